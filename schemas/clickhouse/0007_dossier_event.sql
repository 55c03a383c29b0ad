-- Dossier events as the aggregator applied them, one row per event, for audit and replay:
-- which events a KPI rests on, and where each came from in Kafka. Deduplicated by event_id
-- (a replay after a crash writes the same rows again; readers group by event_id).
-- Too-late events are not here: they are in the dead-letter topic with their reason.
CREATE TABLE IF NOT EXISTS dossier_event
(
    event_id        String,
    agency_code     String,
    dossier_id      String,
    kind            String,          -- received, processed, ... (Avro enum names)
    occurred_at     Int64,           -- UTC microseconds
    day             Date,            -- local day, Asia/Ho_Chi_Minh
    channel         String,          -- in_person, online, postal
    online_level    Int32,
    kafka_partition UInt32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (agency_code, event_id);
