-- Open and overdue-open dossiers per unit. Parameter: now (UTC microseconds).
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, countIf(o = 0 AND r != 0) AS open, countIf(o = 0 AND d != 0 AND d < ?) AS overdue
FROM (
    SELECT agency_code, argMax(outcome, version) AS o, argMax(deadline_at, version) AS d, argMax(received_at, version) AS r
FROM dossier_state
GROUP BY kafka_partition, agency_code, dossier_id
)
GROUP BY agency_code
ORDER BY agency_code
