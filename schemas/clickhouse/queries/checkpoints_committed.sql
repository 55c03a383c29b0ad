-- The newest checkpoint of every partition of a topic, with the watermark stored with it.
-- Parameters: consumer group, topic.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate,
-- hence the inner query).
SELECT kafka_partition, newest_offset AS next_offset, watermark_micros
FROM
(
    SELECT kafka_partition, max(next_offset) AS newest_offset, argMax(watermark, next_offset) AS watermark_micros
    FROM checkpoints
    WHERE consumer_group = ? AND topic = ?
    GROUP BY kafka_partition
)
ORDER BY kafka_partition
