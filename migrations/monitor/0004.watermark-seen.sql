-- The oldest transaction still running when a detector's last run took its snapshot. Rows written
-- by transactions older than that were visible to the run, which examined them: the next run skips
-- them in its late window instead of reading the whole window again (docs/architecture.md).
-- depends: 0003.account-totals-hash

ALTER TABLE monitor.watermarks ADD COLUMN seen_xmin xid8;
COMMENT ON COLUMN monitor.watermarks.seen_xmin IS
    'pg_snapshot_xmin of the last successful run''s snapshot; NULL: the next run reads its whole late window';
