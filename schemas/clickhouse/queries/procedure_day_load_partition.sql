-- The newest version of every procedure bucket of one Kafka partition from a day on (aggregator state;
-- older buckets can no longer change: their events would be beyond the allowed lateness). Parameters: partition, first day.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT kafka_partition, agency_code, procedure_code, day, r AS received, o AS received_online, v AS version
FROM (
    SELECT kafka_partition, agency_code, procedure_code, day, argMax(received, version) AS r, argMax(received_online, version) AS o, max(version) AS v
FROM procedure_day
WHERE kafka_partition = ? AND day >= toDate(?)
GROUP BY kafka_partition, agency_code, procedure_code, day )
