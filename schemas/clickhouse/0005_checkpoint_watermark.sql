-- The partition's watermark (newest event time applied, UTC micros) stored with each
-- checkpoint, so that a replay from the checkpoint judges allowed lateness exactly as
-- the first run did (docs/ARCHITECTURE.md, "Allowed lateness").
ALTER TABLE checkpoints ADD COLUMN watermark Int64 DEFAULT 0;
