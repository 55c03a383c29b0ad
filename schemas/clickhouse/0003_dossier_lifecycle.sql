-- Lifecycle facts per dossier, for the lateness KPIs (on time, late, apology coverage,
-- overdue open) and postal returns. The aggregator judges each dossier with
-- parpulse_core::lifecycle and stores the outcome; counts per unit and day are
-- summed from the newest row of each dossier when read (docs/ARCHITECTURE.md).
-- Times are UTC microseconds, 0 = not (yet) known.

ALTER TABLE dossier_state
    ADD COLUMN received_at Int64 DEFAULT 0,
    ADD COLUMN due_at Int64 DEFAULT 0,
    ADD COLUMN legal_max_days Int32 DEFAULT 0,
    ADD COLUMN supplement_requested Array(Int64),
    ADD COLUMN supplement_received Array(Int64),
    ADD COLUMN processed_at Int64 DEFAULT 0,
    ADD COLUMN other_end_at Int64 DEFAULT 0,
    ADD COLUMN returned_at Int64 DEFAULT 0,
    ADD COLUMN returned_postal UInt8 DEFAULT 0,
    ADD COLUMN apology UInt8 DEFAULT 0,
    ADD COLUMN fee_bearing UInt8 DEFAULT 0,
    ADD COLUMN paid_online UInt8 DEFAULT 0,
    ADD COLUMN digitized UInt8 DEFAULT 0,
    ADD COLUMN outcome UInt8 DEFAULT 0,       -- 0 open, 1 on time, 2 late
    ADD COLUMN end_day Date DEFAULT toDate(0), -- local day of the end date, when ended
    ADD COLUMN deadline_at Int64 DEFAULT 0;   -- open: when it becomes overdue; 0 = none or clock stopped
