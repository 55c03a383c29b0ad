-- Per unit and reception day: received dossiers, fee-bearing, paid online, digitized (Decision 766 indicators), and
-- postal use: results registered for return by post, and dossiers received or returned by post (or both).
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, d AS day, count() AS received, countIf(f = 1) AS fee_bearing, countIf(f = 1 AND p = 1) AS paid_online, countIf(g = 1) AS digitized, countIf(rp = 1) AS result_postal, countIf(rp = 1 OR ch = 3) AS postal_users
FROM (
    SELECT agency_code, argMax(received_offset, version) AS ro, argMax(received_day, version) AS d, argMax(fee_bearing, version) AS f, argMax(paid_online, version) AS p, argMax(digitized, version) AS g, argMax(result_postal, version) AS rp, argMax(received_channel, version) AS ch
FROM dossier_state
GROUP BY kafka_partition, agency_code, dossier_id
)
WHERE ro >= 0 AND d >= toDate(?) AND d <= toDate(?)
GROUP BY agency_code, d
ORDER BY agency_code, d
