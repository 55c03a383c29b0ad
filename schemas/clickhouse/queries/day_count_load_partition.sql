-- The newest version of every count of every day bucket of one Kafka partition from a day on (aggregator state;
-- older buckets are fetched one at a time when an event needs them: day_count_load_bucket.sql). Parameters: partition, first day.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT kafka_partition, agency_code, day, counter, v AS value, ver AS version
FROM (
    SELECT kafka_partition, agency_code, day, counter, argMax(value, version) AS v, max(version) AS ver
    FROM day_count
    WHERE kafka_partition = ? AND day >= toDate(?)
    GROUP BY kafka_partition, agency_code, day, counter
)
