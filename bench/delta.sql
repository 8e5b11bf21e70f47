-- New traffic (Δ) on a generated benchmark ledger: bench.delta_transactions payments and top-ups
-- with the same mix as the history (plus 1% still pending), the card balances updated to match, and
-- bench.delta_scans card scans, all created within bench.delta_window (a minute for a cycle) before
-- now() minus bench.delta_offset (0 but for the sustained figure). Each card appears at most once per source in a Δ (a random offset into a fixed permutation
-- of the cards, while the Δ is smaller than the card count), as on a ledger where one card is
-- rarely used twice in a minute: the anomalies a cycle handles are the standing ones from the
-- history, not accidental bursts.
-- bench/run.py runs it inside the transaction that then times the detectors; under psql:
--   SET bench.delta_transactions = 10000; SET bench.delta_scans = 10000; SET bench.delta_window = '60 seconds';
--   SET bench.delta_offset = '0 seconds';
--   \i bench/delta.sql

WITH d AS (
    SELECT 'x' || nextval('bench.ids') AS txn_id, r.account_id, r.amount,
           CASE WHEN r.r < 0.96 THEN 'success' WHEN r.r < 0.99 THEN 'failed' ELSE 'pending' END AS status,
           r.device_id, r.created_at
      FROM (SELECT bench.acct(1 + (o.off + g * 7919) % p.accounts) AS account_id,
                   bench.amount(random(), random()) AS amount, random() AS r,
                   'pos' || lpad((1 + floor(random() * 2000))::text, 4, '0') AS device_id,
                   now() - current_setting('bench.delta_offset', true)::interval
                       - random() * current_setting('bench.delta_window')::interval AS created_at
              FROM bench.params p, (SELECT floor(random() * 1e9)::bigint AS off) o,
                   generate_series(1, current_setting('bench.delta_transactions')::integer) g) r
), ins AS (
    INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,
                                     device_id, created_at, updated_at)
    SELECT x.txn_id, x.account_id, x.amount, x.status,
           a.balance + x.run - x.credited, a.balance + x.run, x.device_id, x.created_at, x.created_at
      FROM (SELECT d.*, CASE WHEN d.status = 'success' THEN d.amount ELSE 0 END AS credited,
                   sum(CASE WHEN d.status = 'success' THEN d.amount ELSE 0 END)
                       OVER (PARTITION BY d.account_id ORDER BY d.created_at, d.txn_id ROWS UNBOUNDED PRECEDING) AS run
              FROM d) x
      JOIN ledger.accounts a ON a.account_id = x.account_id
     ORDER BY x.created_at
    RETURNING account_id, amount, status, created_at
)
UPDATE ledger.accounts a SET balance = a.balance + s.total
  FROM (SELECT account_id, sum(amount) FILTER (WHERE status = 'success') AS total FROM ins GROUP BY account_id) s
 WHERE a.account_id = s.account_id AND s.total IS NOT NULL;

INSERT INTO ledger.scans (scan_id, account_id, device_id, scanned_at)
SELECT 'y' || nextval('bench.ids'), bench.acct(1 + (o.off + g * 7919) % p.accounts),
       'rdr' || lpad((1 + floor(random() * 2000))::text, 4, '0'),
       now() - current_setting('bench.delta_offset', true)::interval
             - random() * current_setting('bench.delta_window')::interval
  FROM bench.params p, (SELECT floor(random() * 1e9)::bigint AS off) o,
       generate_series(1, current_setting('bench.delta_scans')::integer) g;
