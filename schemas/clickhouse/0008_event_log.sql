-- Every event the aggregator applied (dossier, budget, staffing), whole: the Kafka message
-- value as it was (the 5-byte wire header with the Avro schema id, then the Avro datum),
-- where it came from in Kafka, and when it was admitted. The long-term record from which
-- every derived table can be recomputed after a rule is corrected, whatever Kafka's
-- retention. Deduplicated by event id (a replay writes the same rows again; readers take
-- one row per event id). Replaces dossier_event (0007), which is no longer written.
-- Codec: the table's default (LZ4): payloads are short and similar, see docs/BENCHMARKS.md.
CREATE TABLE IF NOT EXISTS event_log
(
    event_id        String,
    agency_code     String,
    occurred_at     Int64,           -- UTC microseconds
    day             Date,            -- local day, Asia/Ho_Chi_Minh
    recorded_at     Int64,           -- when the ingestor admitted it, UTC microseconds
    schema_id       UInt32,
    payload         String,          -- the Kafka message value, bytes as produced
    topic           String,
    kafka_partition UInt32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (agency_code, event_id);
