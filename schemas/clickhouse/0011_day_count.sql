-- Every count of a window in one table, one row per count (docs/ARCHITECTURE.md, "One
-- source per count"): beside the receptions that `dossier_day` kept, a day bucket counts
-- the Decision 766 facts of the dossiers received that day and the dossiers that ended
-- that day, judged by the lateness rules (docs/KPIS.md). The aggregator keeps them as each
-- dossier changes; the exporter reads them all in one read, instead of summing a row per
-- dossier on each read. A count is named after its field in parpulse_core::kpi
-- (received, received_online, ..., late, late_with_apology, ...): a new count needs no
-- migration.
--
-- Same exactly-once protocol as dossier_day: `version` is the partition's next Kafka
-- offset when the bucket was written (all its counts together); readers take
-- argMax(value, version) per (agency_code, day, counter, kafka_partition), then sum
-- partitions.
--
-- The receptions `dossier_day` holds are copied here (versions kept), so receptions and
-- the online and postal shares read the same after this migration; the other counts of
-- buckets written before it are missing until `parpulse rebuild` recounts them from the
-- audit trail (docs/OPERATIONS.md, "Upgrading"). `dossier_day` is left in place, unused.

CREATE TABLE IF NOT EXISTS day_count
(
    kafka_partition UInt32,
    agency_code     String,
    day             Date,            -- local day, Asia/Ho_Chi_Minh
    counter         String,          -- the count's name (parpulse_core::kpi)
    value           UInt64,
    version         UInt64           -- next Kafka offset of the partition when written
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (agency_code, day, counter, kafka_partition);

INSERT INTO day_count (kafka_partition, agency_code, day, counter, value, version)
SELECT kafka_partition, agency_code, day, name, counted, v
FROM (
    SELECT kafka_partition, agency_code, day, max(version) AS v,
        argMax(received, version) AS r, argMax(received_online, version) AS o, argMax(received_postal, version) AS p
    FROM dossier_day
    GROUP BY kafka_partition, agency_code, day
)
ARRAY JOIN ['received', 'received_online', 'received_postal'] AS name, [r, o, p] AS counted;
