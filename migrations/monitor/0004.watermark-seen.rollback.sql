ALTER TABLE monitor.watermarks DROP COLUMN IF EXISTS seen_xmin;
