-- The naive baseline: the same ten rules written the way hand-written monitoring SQL usually is,
-- each one a query over the whole ledger (or its whole window) every time it runs: no watermark,
-- no running totals, no materialized baseline. Each `-- name:` block returns the findings of one
-- rule; bench/run.py times `SELECT count(*) FROM (<rule>) x` for each, once, on the same data and
-- server as the incremental detectors. The indexes of the reference ledger are there for the
-- planner to use.

-- name: failed_debit
SELECT t.txn_id, t.account_id, t.balance_before - t.balance_after AS lost
  FROM ledger.transactions t
 WHERE t.status = 'failed' AND t.balance_after < t.balance_before

-- name: balance_mismatch
SELECT a.account_id, a.balance - (a.opening_balance + coalesce(s.total, 0)) AS difference
  FROM ledger.accounts a
  LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger.transactions
              WHERE status = 'success' GROUP BY account_id) s USING (account_id)
 WHERE abs(a.balance - (a.opening_balance + coalesce(s.total, 0))) > 0.01

-- name: consecutive_failures
SELECT account_id, txn_id
  FROM (SELECT account_id, txn_id, status, created_at,
               lead(status, 1) OVER w AS status1, lead(status, 2) OVER w AS status2,
               lead(created_at, 2) OVER w AS created2
          FROM ledger.transactions
         WHERE status <> 'pending'
        WINDOW w AS (PARTITION BY account_id ORDER BY created_at, txn_id)) x
 WHERE status = 'failed' AND status1 = 'failed' AND status2 = 'failed'
   AND created2 - created_at <= interval '10 minutes'

-- name: negative_balance
SELECT account_id, balance FROM ledger.accounts WHERE balance < 0

-- name: stuck_pending
SELECT txn_id, account_id, amount FROM ledger.transactions
 WHERE status = 'pending' AND created_at < now() - interval '10 minutes'

-- name: failure_rate
SELECT count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS total
  FROM ledger.transactions
 WHERE created_at >= now() - interval '15 minutes' AND status IN ('success', 'failed')
HAVING count(*) >= 20 AND count(*) FILTER (WHERE status = 'failed')::numeric / count(*) > 0.05

-- name: duplicate_scan
SELECT account_id, scan_id
  FROM (SELECT account_id, scan_id, scanned_at,
               lag(scanned_at) OVER w AS prev_at, lead(scanned_at) OVER w AS next_at
          FROM ledger.scans
        WINDOW w AS (PARTITION BY account_id ORDER BY scanned_at, scan_id)) x
 WHERE scanned_at - prev_at <= interval '5 seconds' OR next_at - scanned_at <= interval '5 seconds'

-- name: concurrent_txn
SELECT account_id, txn_id
  FROM (SELECT account_id, txn_id, created_at,
               lag(created_at) OVER w AS prev_at, lead(created_at) OVER w AS next_at
          FROM ledger.transactions
        WINDOW w AS (PARTITION BY account_id ORDER BY created_at, txn_id)) x
 WHERE created_at - prev_at <= interval '2 seconds' OR next_at - created_at <= interval '2 seconds'

-- name: volume_anomaly
WITH hours AS (
    SELECT h FROM generate_series(date_trunc('hour', now()) - interval '29 days', date_trunc('hour', now()),
                                  interval '1 hour') h
), raw AS (
    SELECT date_trunc('hour', created_at) AS h, count(*) AS n FROM ledger.transactions
     WHERE created_at >= date_trunc('hour', now()) - interval '29 days' GROUP BY 1
), counts AS (
    SELECT hours.h, coalesce(raw.n, 0) AS n FROM hours LEFT JOIN raw USING (h)
), last AS (
    SELECT h, n FROM counts WHERE h = date_trunc('hour', now()) - interval '1 hour'
), baseline AS (
    SELECT avg(c.n) AS mean, coalesce(stddev_samp(c.n), 0) AS sd, count(*) AS samples
      FROM counts c, last
     WHERE c.h < last.h AND extract(isodow FROM c.h) = extract(isodow FROM last.h)
       AND extract(hour FROM c.h) = extract(hour FROM last.h)
)
SELECT last.h, last.n, baseline.mean
  FROM last, baseline
 WHERE baseline.samples >= 2 AND abs(last.n - baseline.mean) > 3 * greatest(baseline.sd, sqrt(baseline.mean), 1)

-- name: detector_health
SELECT d.name
  FROM monitor.detectors d
  LEFT JOIN LATERAL (SELECT r.status, r.finished_at FROM monitor.detector_runs r
                      WHERE r.detector = d.name ORDER BY r.started_at DESC LIMIT 1) r ON true
 WHERE d.enabled AND (r.status = 'error' OR coalesce(r.finished_at, d.enabled_at) < now() - interval '3 minutes')
