-- Budget sums per unit for one fiscal year, each event id counted once, from the events that occurred
-- before an instant. Parameters: fiscal year, UTC microseconds (the largest Int64 for every event).
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT ag AS agency_code, fy AS fiscal_year, sumIf(a, k = 'allocated') AS allocated, sumIf(a, k = 'committed') AS committed, sumIf(a, k = 'disbursed') AS disbursed, sumIf(a, k = 'saved') AS saved, sumIf(a, k = 'disclosed') AS disclosed
FROM (
    SELECT event_id, any(agency_code) AS ag, any(fiscal_year) AS fy, any(kind) AS k, any(amount_vnd) AS a
FROM budget_event
WHERE fiscal_year = ? AND occurred_at < ?
GROUP BY event_id
)
GROUP BY ag, fy
ORDER BY ag
