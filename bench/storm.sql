-- The event storm (docs/benchmarks.md): a detector returns N findings at once, as after a payment
-- processor's outage, and the runner folds them into events; then the same N as open conditions
-- seen again. Each against its floor: the plain statement that writes the same rows.

-- query: setup_schema
CREATE SCHEMA bench_storm

-- query: setup_findings
-- N findings shaped like failed_debit's (the number is written in by bench/storm.py)
CREATE TABLE bench_storm.findings AS
SELECT 'C-' || g AS subject, 'T' || g AS dedup_key, 'T' || g AS txn_id, (g % 100 + 1)::numeric AS amount,
       format('failed transaction T%s on C-%s still took %s (balance 200 -> %s)', g, g, g % 100 + 1,
              199 - g % 100) AS summary,
       jsonb_build_object('txn_id', 'T' || g, 'account_id', 'C-' || g, 'status', 'failed',
                          'amount', -(g % 100 + 1), 'balance_before', 200, 'balance_after', 199 - g % 100,
                          'lost', g % 100 + 1, 'device_id', 'D-' || (g % 50),
                          'created_at', now(), 'updated_at', NULL) AS evidence
  FROM generate_series(1, {n}) g

-- query: setup_detector
CREATE FUNCTION bench_storm.detect_storm(params jsonb, since timestamptz) RETURNS SETOF monitor.finding
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT f.subject, f.dedup_key, f.txn_id, f.amount, f.summary, f.evidence FROM bench_storm.findings f
$$

-- query: setup_register
SELECT monitor.register_detector('storm_finding', 'bench_storm.detect_storm', 'critical', 'finding'),
       monitor.register_detector('storm_condition', 'bench_storm.detect_storm', 'high', 'condition')

-- query: setup_copy
-- the floor's target: monitor.events' columns, no index, no constraint but NOT NULL
CREATE TABLE bench_storm.events_copy (LIKE monitor.events)

-- query: floor_insert
INSERT INTO bench_storm.events_copy (event_id, detector, kind, severity, status, subject, dedup_key, txn_id,
                                     amount, summary, evidence, first_seen, last_seen, occurrences, changed_at)
SELECT row_number() OVER (), 'storm_finding', 'finding', 'critical', 'open', f.subject, f.dedup_key, f.txn_id,
       f.amount, f.summary, f.evidence, now(), now(), 1, now()
  FROM bench_storm.findings f

-- query: floor_update
-- the columns the runner writes when a condition is seen again, joined to the findings by key
UPDATE bench_storm.events_copy c
   SET last_seen = now(), occurrences = c.occurrences + 1, evidence = f.evidence, summary = f.summary,
       amount = f.amount, txn_id = coalesce(c.txn_id, f.txn_id), subject = coalesce(f.subject, c.subject),
       severity = 'high'
  FROM bench_storm.findings f
 WHERE f.dedup_key = c.dedup_key

-- query: fold
SELECT monitor.run_detector(%s)

-- query: run_status
SELECT status, coalesce(error, ''), events_opened, events_updated FROM monitor.detector_runs
 WHERE detector = %s ORDER BY run_id DESC LIMIT 1

-- query: forget
-- between repetitions: the storm's events and history go, so that each fold starts from none
DELETE FROM monitor.events WHERE detector = %s

-- query: forget_history
DELETE FROM monitor.alert_history WHERE detector = %s

-- query: truncate_copy
TRUNCATE bench_storm.events_copy
