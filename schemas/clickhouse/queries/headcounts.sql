-- The newest headcount snapshot per unit and position, each event id counted once, among the snapshots
-- that occurred before an instant. Parameter: UTC microseconds (the largest Int64 for every snapshot).
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT ag AS agency_code, po AS position, argMax(q, t) AS quota, argMax(f, t) AS filled, argMax(b, t) AS baseline_quota
FROM (
    SELECT event_id, any(agency_code) AS ag, any(position) AS po, any(quota) AS q, any(filled) AS f, any(baseline_quota) AS b, any(occurred_at) AS t
FROM staffing_event
WHERE kind = 'headcount_snapshot' AND occurred_at < ?
GROUP BY event_id
)
GROUP BY ag, po
ORDER BY ag, po
