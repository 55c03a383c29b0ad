-- The newest state of every dossier a period report needs: received before the period's end,
-- or refused or sent an apology letter within it; minus those the aggregator judged ended
-- (early, on time or late; not by a pending supplement) on a day before the period, unless
-- their apology letter falls in it. The report judges each one as of the period's end
-- (parpulse_core::lifecycle). Two steps, so that only the needed dossiers' whole rows are
-- read: the newest version of each needed dossier from a few scalar columns, then those rows.
-- A needed dossier's newest row had an event at or after the start, or is open, or waits for
-- a supplement; the innermost set (any version so) narrows the grouping to those dossiers.
-- Parameters: start, end, start, end, start, end (UTC micros; start inclusive, end
-- exclusive), first day, start, end.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT kafka_partition, agency_code, dossier_id, received_offset, received_day, version, received_at, due_at, legal_max_days, supplement_requested, supplement_received, processed_at, other_end_at, returned_at, returned_postal, apology, fee_bearing, paid_online, digitized, outcome, end_day, deadline_at, last_event_at, received_channel, result_postal, stopped_at, withdrawn_at, refused_at, apology_at, apology_due_at, end_kind, apology_timing
FROM dossier_state
WHERE (kafka_partition, agency_code, dossier_id, version) IN (
    SELECT kafka_partition, agency_code, dossier_id, max(version)
    FROM dossier_state
    WHERE (kafka_partition, agency_code, dossier_id) IN (
        SELECT kafka_partition, agency_code, dossier_id FROM dossier_state WHERE last_event_at >= ? OR outcome = 0 OR end_kind = 5)
    GROUP BY kafka_partition, agency_code, dossier_id
    HAVING ((argMax(received_at, version) != 0 AND argMax(received_at, version) < ?)
            OR (argMax(refused_at, version) >= ? AND argMax(refused_at, version) < ?)
            OR (argMax(apology_at, version) >= ? AND argMax(apology_at, version) < ?))
       AND NOT (argMax(outcome, version) IN (1, 2, 3) AND argMax(end_kind, version) != 5 AND argMax(end_day, version) < toDate(?)
                AND NOT (argMax(apology_at, version) >= ? AND argMax(apology_at, version) < ?)) )
LIMIT 1 BY kafka_partition, agency_code, dossier_id