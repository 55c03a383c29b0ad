-- Every count per unit and local day, partitions summed, newest versions: receptions and the facts of the
-- dossiers received that day, and the dossiers that ended that day (zeros left out). Parameters: first day, last day.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT agency_code, day, counter, sum(v) AS value
FROM (
    SELECT agency_code, day, counter, kafka_partition, argMax(value, version) AS v
    FROM day_count
    WHERE day >= toDate(?) AND day <= toDate(?)
    GROUP BY agency_code, day, counter, kafka_partition
)
GROUP BY agency_code, day, counter
HAVING value > 0
ORDER BY agency_code, day, counter
