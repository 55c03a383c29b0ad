-- The official rules (docs/KPIS.md, "Lateness rules"): how each dossier came in and
-- ended, refusals apart from endings, the result's postal return known from any event,
-- and apology letters with their time (timely or late) and the new appointment they give.
-- outcome (0003) gains 3 = early (trước hạn) and 4 = refused at reception; deadline_at
-- now also holds the deadline a resolved dossier was judged against.
-- Rows written before this migration read 0 here: `parpulse rebuild` re-judges them
-- from the audit trail (docs/OPERATIONS.md, "Upgrading").

ALTER TABLE dossier_state
    ADD COLUMN received_channel UInt8 DEFAULT 0,  -- 1 in person, 2 online, 3 postal; 0 unknown
    ADD COLUMN result_postal UInt8 DEFAULT 0,     -- result (to be) returned by public postal service
    ADD COLUMN stopped_at Int64 DEFAULT 0,
    ADD COLUMN withdrawn_at Int64 DEFAULT 0,
    ADD COLUMN refused_at Int64 DEFAULT 0,
    ADD COLUMN apology_at Int64 DEFAULT 0,        -- first apology letter
    ADD COLUMN apology_due_at Int64 DEFAULT 0,    -- the new appointment it gave (never judged)
    ADD COLUMN end_kind UInt8 DEFAULT 0,          -- 9 processed, 10 returned, 8 stopped, 7 withdrawn, 5 waiting for a supplement
    ADD COLUMN apology_timing UInt8 DEFAULT 0;    -- 0 none, 1 timely, 2 late
