-- Receptions per unit, administrative procedure (mã TTHC) and local day: the input of the
-- procedure catalogue's KPIs (docs/KPIS.md, "The online-service indicators"): the share of a
-- unit's level-3/4 procedures that had at least one online dossier, online receptions of the
-- procedures offered at level 3/4, and dossiers whose procedure is not in the catalogue.
-- The catalogue is joined when read, so a corrected catalogue needs no rebuild.
--
-- Same exactly-once protocol as dossier_day (docs/ARCHITECTURE.md): `version` is the
-- partition's next Kafka offset when the row was written; readers take argMax(.., version)
-- per (agency_code, procedure_code, day, kafka_partition), then sum partitions.

CREATE TABLE IF NOT EXISTS procedure_day
(
    kafka_partition UInt32,
    agency_code     String,
    procedure_code  String,          -- mã TTHC as the event gives it
    day             Date,            -- local day of the reception, Asia/Ho_Chi_Minh
    received        UInt64,          -- dossiers received (counted once per dossier)
    received_online UInt64,          -- of which online at level 3/4
    version         UInt64           -- next Kafka offset of the partition when written
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (agency_code, procedure_code, day, kafka_partition);
