-- Per-dossier state the aggregator needs across restarts. For now: which Kafka
-- offset first reported the dossier's reception, so a dossier is counted as
-- received once however often its `received` event is delivered or re-imported.
-- Versioned like dossier_day: `version` is the partition's next offset when written.

CREATE TABLE IF NOT EXISTS dossier_state
(
    kafka_partition UInt32,
    agency_code     String,
    dossier_id      String,
    received_offset Int64,           -- offset of the first `received` event; -1 before reception
    received_day    Date,            -- local day of that reception
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (kafka_partition, agency_code, dossier_id);
