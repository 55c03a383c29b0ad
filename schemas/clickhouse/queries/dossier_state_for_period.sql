-- The newest state of every dossier a period report needs: received before the period's end,
-- or refused or sent an apology letter within it; minus those the aggregator judged ended
-- (early, on time or late; not by a pending supplement) on a day before the period, unless
-- their apology letter falls in it. The report judges each one as of the period's end
-- (parpulse_core::lifecycle). Parameters: end, start, end, start, end (UTC micros; start
-- inclusive, end exclusive), first day, start, end.
-- Used by crates/parpulse-clickhouse and checked on chDB (tests/chdb). Question marks are bound parameters, in order;
-- aliases never shadow column names (ClickHouse 18.16 resolves such an alias inside its own aggregate).
SELECT kafka_partition, agency_code, dossier_id, s.1 AS received_offset, s.2 AS received_day, v AS version, s.3 AS received_at, s.4 AS due_at, s.5 AS legal_max_days, s.6 AS supplement_requested, s.7 AS supplement_received, s.8 AS processed_at, s.9 AS other_end_at, s.10 AS returned_at, s.11 AS returned_postal, s.12 AS apology, s.13 AS fee_bearing, s.14 AS paid_online, s.15 AS digitized, s.16 AS outcome, s.17 AS end_day, s.18 AS deadline_at, s.19 AS last_event_at, s.20 AS received_channel, s.21 AS result_postal, s.22 AS stopped_at, s.23 AS withdrawn_at, s.24 AS refused_at, s.25 AS apology_at, s.26 AS apology_due_at, s.27 AS end_kind, s.28 AS apology_timing
FROM (
    SELECT kafka_partition, agency_code, dossier_id, max(version) AS v, argMax(tuple(received_offset, received_day, received_at, due_at, legal_max_days, supplement_requested, supplement_received, processed_at, other_end_at, returned_at, returned_postal, apology, fee_bearing, paid_online, digitized, outcome, end_day, deadline_at, last_event_at, received_channel, result_postal, stopped_at, withdrawn_at, refused_at, apology_at, apology_due_at, end_kind, apology_timing), version) AS s
FROM dossier_state
GROUP BY kafka_partition, agency_code, dossier_id )
WHERE ((s.3 != 0 AND s.3 < ?) OR (s.24 >= ? AND s.24 < ?) OR (s.25 >= ? AND s.25 < ?))
  AND NOT (s.16 IN (1, 2, 3) AND s.27 != 5 AND s.17 < toDate(?) AND NOT (s.25 >= ? AND s.25 < ?))