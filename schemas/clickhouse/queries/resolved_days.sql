-- Lateness counts per unit and end day from the newest row of each dossier. Parameters: first day, last day.
-- outcome: 1 on time, 2 late, 3 early, 4 refused at reception (on the day refused); apology_timing 1 = timely;
-- end_kind 7 withdrawn, 8 stopped (0009).
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, e AS day, countIf(o IN (1, 2, 3)) AS resolved, countIf(o IN (1, 3)) AS on_time, countIf(o = 3) AS early, countIf(o = 2) AS late, countIf(o = 2 AND t = 1) AS late_with_apology, countIf(o = 4) AS refused, countIf(o IN (1, 2, 3) AND r != 0) AS returned, countIf(o IN (1, 2, 3) AND r != 0 AND p = 1) AS returned_postal, countIf(o IN (1, 2, 3) AND k = 7) AS withdrawn, countIf(o IN (1, 2, 3) AND k = 8) AS stopped
FROM (
    SELECT agency_code, argMax(outcome, version) AS o, argMax(end_day, version) AS e, argMax(apology_timing, version) AS t, argMax(returned_at, version) AS r, argMax(returned_postal, version) AS p, argMax(end_kind, version) AS k
FROM dossier_state
GROUP BY kafka_partition, agency_code, dossier_id
)
WHERE o != 0 AND e >= toDate(?) AND e <= toDate(?)
GROUP BY agency_code, e
ORDER BY agency_code, e
