-- The newest event time applied to each dossier (UTC micros). The aggregator keeps in
-- memory only the dossiers active within the allowed lateness (docs/ARCHITECTURE.md,
-- "Bounded state"); this column says which rows to load on assignment. Rows written
-- before this migration read 0: not loaded, fetched one by one if an event needs them.
ALTER TABLE dossier_state ADD COLUMN last_event_at Int64 DEFAULT 0;
