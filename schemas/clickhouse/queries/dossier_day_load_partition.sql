-- The newest version of every day bucket of one Kafka partition (aggregator state). Parameter: partition.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT kafka_partition, agency_code, day, r AS received, o AS received_online, p AS received_postal, v AS version
FROM (
    SELECT kafka_partition, agency_code, day, argMax(received, version) AS r, argMax(received_online, version) AS o, argMax(received_postal, version) AS p, max(version) AS v
FROM dossier_day
WHERE kafka_partition = ?
GROUP BY kafka_partition, agency_code, day )
