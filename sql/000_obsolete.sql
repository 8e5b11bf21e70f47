-- Objects earlier releases created in sql/ and this one no longer ships, or ships with another
-- signature or return type (which CREATE OR REPLACE cannot change): dropped first, so that an
-- upgrade (a plain `monitorctl install`) leaves the schema a fresh install would make. Every object
-- removed from sql/ gets a line here; tests/migration/test_upgrade.py checks the result.

-- 0.1.0
DROP FUNCTION IF EXISTS monitor.lock_class();                        -- the run lock is monitor.run_locks
DROP FUNCTION IF EXISTS monitor.check_unresolved(bigint[]);          -- now monitor.lock_unresolved
DROP FUNCTION IF EXISTS monitor.check_detector_function(text);       -- now returns regprocedure
DROP FUNCTION IF EXISTS monitor.param_numeric(jsonb, text);          -- unused
DROP FUNCTION IF EXISTS monitor.run_detector(text, timestamptz);     -- now with an optional until
DROP FUNCTION IF EXISTS monitor.find_bursts(text, interval, integer, timestamptz);  -- likewise

-- 0.2.0
DROP FUNCTION IF EXISTS monitor.find_bursts(text, interval, integer, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS monitor.find_bursts(text, interval, integer, timestamptz, timestamptz, integer);  -- + exclude
-- monitor.prune: deliveries added; pg_cron's run records left to the prune-cron job (0.1.0 had one more
-- INOUT, as the procedure now has again: the same argument types, so it is dropped and made anew)
DROP PROCEDURE IF EXISTS monitor.prune(boolean, integer, integer, bigint, bigint, bigint, bigint, bigint);
