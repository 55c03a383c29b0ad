-- Receptions per unit, procedure and local day, partitions summed, newest versions. Parameters: first day, last day.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, procedure_code, day, sum(r) AS received, sum(o) AS received_online
FROM (
    SELECT agency_code, procedure_code, day, kafka_partition, argMax(received, version) AS r, argMax(received_online, version) AS o
FROM procedure_day
WHERE day >= toDate(?) AND day <= toDate(?)
GROUP BY agency_code, procedure_code, day, kafka_partition
)
GROUP BY agency_code, procedure_code, day
ORDER BY agency_code, procedure_code, day
