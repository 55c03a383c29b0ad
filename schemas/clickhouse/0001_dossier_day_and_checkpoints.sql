-- Day buckets of dossier counts per unit, and the aggregator's Kafka checkpoints.
-- Runs on ClickHouse 18.16 (Debian) and current releases. Statements end with ';' at a line end.
--
-- Exactly-once effect (docs/ARCHITECTURE.md): every bucket row carries `version`, the
-- Kafka offset up to which (exclusive) its partition's events are counted in it.
-- ReplacingMergeTree keeps the highest version of a (kafka_partition, agency_code, day)
-- row; readers take argMax(.., version), so they never depend on merges having run.

CREATE TABLE IF NOT EXISTS dossier_day
(
    kafka_partition UInt32,
    agency_code     String,
    day             Date,            -- local day, Asia/Ho_Chi_Minh
    received        UInt64,          -- dossiers received (đã tiếp nhận)
    received_online UInt64,          -- of which online at level 3/4 (trực tuyến mức độ 3, 4)
    received_postal UInt64,          -- of which by public postal service (bưu chính công ích)
    version         UInt64           -- next Kafka offset of the partition when written
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (agency_code, day, kafka_partition);

CREATE TABLE IF NOT EXISTS checkpoints
(
    consumer_group  String,
    topic           String,
    kafka_partition UInt32,
    next_offset     Int64,           -- first offset not yet reflected in the bucket tables
    written_at      DateTime
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY (consumer_group, topic, kafka_partition, next_offset);
