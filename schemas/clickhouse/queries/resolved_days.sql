-- Lateness counts per unit and end day from the newest row of each dossier. Parameters: first day, last day.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, e AS day, countIf(o != 0) AS resolved, countIf(o = 1) AS on_time, countIf(o = 2) AS late, countIf(o = 2 AND a = 1) AS late_with_apology, countIf(r != 0) AS returned, countIf(r != 0 AND p = 1) AS returned_postal
FROM (
    SELECT agency_code, argMax(outcome, version) AS o, argMax(end_day, version) AS e, argMax(apology, version) AS a, argMax(returned_at, version) AS r, argMax(returned_postal, version) AS p
FROM dossier_state
GROUP BY kafka_partition, agency_code, dossier_id
)
WHERE o != 0 AND e >= toDate(?) AND e <= toDate(?)
GROUP BY agency_code, e
ORDER BY agency_code, e
