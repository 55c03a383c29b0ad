-- Budget and staffing events, one row per event, deduplicated by event_id when read
-- (rows of the same event are identical, so a redelivery or re-import changes nothing).
-- Volumes are small (a few events per unit per month); KPIs are summed when read.

CREATE TABLE IF NOT EXISTS budget_event
(
    event_id        String,
    agency_code     String,
    occurred_at     Int64,           -- UTC microseconds
    day             Date,            -- local day
    kind            String,          -- allocated, committed, disbursed, saved, disclosed
    fiscal_year     Int32,
    category        String,
    amount_vnd      Int64,
    kafka_partition UInt32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, fiscal_year, event_id);

CREATE TABLE IF NOT EXISTS staffing_event
(
    event_id        String,
    agency_code     String,
    occurred_at     Int64,
    day             Date,
    kind            String,          -- headcount_snapshot, hired, departed
    position        String,          -- head, deputy, staff
    quota           Int32,           -- -1 when absent
    filled          Int32,
    baseline_year   Int32,
    baseline_quota  Int32,
    people          Int32,           -- hired / departed count
    kafka_partition UInt32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, event_id);
