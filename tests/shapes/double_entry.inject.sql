-- Anomalies for shape "double_entry" (schema de); run after double_entry.build.sql, in one
-- transaction. Every injected row is on a fresh account named 'inject-…' (ids 900000001…) or on
-- 'world' (id 1), with ids above the clean ones. Times are UTC wall-clock, relative to now().
-- Expected findings (README.md):
--   a) failed_debit         subject '900000001' (inject-a), key '900000002' (the REJECTED transfer)
--      balance_mismatch     subject '900000001' (inject-a: balance 15000, history 20000)
--      balance_mismatch     subject '900000002' (inject-a-merchant: balance 5000, history 0)
--   b) concurrent_txn       subject '900000003' (inject-b), key '900000004' (first of two payments 0.6 s apart)
--   c) stuck_pending        subject '900000005' (inject-c), key '900000007' (QUEUED 20 minutes ago)
--   d) negative_balance     subject '900000006' (inject-d: balance -5000)
--   e) consecutive_failures subject '900000008' (inject-e), key '900000011' (first of 3 REJECTED)
CREATE TEMP TABLE de_inject_accounts ON COMMIT DROP AS
SELECT * FROM (VALUES
    (900000001::bigint, 'inject-a'),
    (900000002::bigint, 'inject-a-merchant'),
    (900000003::bigint, 'inject-b'),
    (900000004::bigint, 'inject-b-merchant'),
    (900000005::bigint, 'inject-c'),
    (900000006::bigint, 'inject-d'),
    (900000007::bigint, 'inject-d-merchant'),
    (900000008::bigint, 'inject-e')
) v(id, name);

-- (transfer id, source, destination, amount, queued seconds ago, answer, answered seconds ago)
CREATE TEMP TABLE de_inject ON COMMIT DROP AS
SELECT v.id, v.source_id, v.destination_id, v.amount,
       (now() AT TIME ZONE 'UTC') - make_interval(secs => v.queued_ago) AS created_at,
       v.answer,
       (now() AT TIME ZONE 'UTC') - make_interval(secs => v.answered_ago) AS answered_at
  FROM (VALUES
    -- a) inject-a gets a deposit, then a payment to its merchant is REJECTED but moves the money
    (900000001::bigint, 1::bigint, 900000001::bigint, 20000::bigint, 110.0, 'APPLIED', 108.0),
    (900000002, 900000001, 900000002, 5000, 90.0, 'REJECTED', 88.0),
    -- b) inject-b pays the same merchant twice, 0.6 s apart, both APPLIED
    (900000003, 1, 900000003, 30000, 105.0, 'APPLIED', 104.0),
    (900000004, 900000003, 900000004, 4000, 60.0, 'APPLIED', 58.0),
    (900000005, 900000003, 900000004, 5000, 59.4, 'APPLIED', 57.0),
    -- c) inject-c: a payout to world QUEUED 20 minutes ago and never answered, and a recent deposit
    --    (a row committed now must not be dated before balance_mismatch's horizon, 5 minutes back:
    --    only a full pass would count it)
    (900000006, 1, 900000005, 25000, 100.0, 'APPLIED', 98.0),
    (900000007, 900000005, 1, 7000, 1200.0, NULL, NULL),
    -- d) inject-d: a deposit of 10000, then an APPLIED payment of 15000 (overdraft to -5000)
    (900000008, 1, 900000006, 10000, 100.0, 'APPLIED', 98.0),
    (900000009, 900000006, 900000007, 15000, 80.0, 'APPLIED', 78.0),
    -- e) inject-e: a deposit, then 3 payouts REJECTED in a row, 15 s apart
    (900000010, 1, 900000008, 30000, 115.0, 'APPLIED', 113.0),
    (900000011, 900000008, 1, 2000, 90.0, 'REJECTED', 89.0),
    (900000012, 900000008, 1, 3000, 75.0, 'REJECTED', 74.0),
    (900000013, 900000008, 1, 4000, 60.0, 'REJECTED', 59.0)
  ) v(id, source_id, destination_id, amount, queued_ago, answer, answered_ago);

INSERT INTO de.accounts (id, name, allow_negative_balance, balance, created_at, updated_at)
SELECT a.id, a.name, false, 0, (now() AT TIME ZONE 'UTC') - interval '30 minutes',
       (now() AT TIME ZONE 'UTC') - interval '30 minutes'
  FROM de_inject_accounts a;

INSERT INTO de.transfers (id, source_account_id, destination_account_id, amount, created_at)
SELECT id, source_id, destination_id, amount, created_at FROM de_inject ORDER BY id;

-- state ids: 900000001… in the order queued, answered per transfer
INSERT INTO de.transfer_states (id, transfer_id, state, created_at)
SELECT 900000000 + row_number() OVER (ORDER BY s.transfer_id, s.seq), s.transfer_id, s.state, s.at
  FROM (SELECT id AS transfer_id, 1 AS seq, 'QUEUED' AS state, created_at AS at FROM de_inject
        UNION ALL
        SELECT id, 2, answer, answered_at FROM de_inject WHERE answer IS NOT NULL) s;

-- balances follow the APPLIED transfers …
UPDATE de.accounts a
   SET balance = a.balance + m.delta, updated_at = greatest(a.updated_at, m.last_applied)
  FROM (SELECT l.account_id, sum(l.delta) AS delta, max(l.at) AS last_applied
          FROM (SELECT source_id AS account_id, -amount AS delta, answered_at AS at
                  FROM de_inject WHERE answer = 'APPLIED'
                UNION ALL
                SELECT destination_id, amount, answered_at FROM de_inject WHERE answer = 'APPLIED') l
         GROUP BY l.account_id) m
 WHERE a.id = m.account_id;

-- … and a) the REJECTED transfer 900000002 moved its 5000 all the same
UPDATE de.accounts a
   SET balance = a.balance + CASE a.id WHEN t.source_id THEN -t.amount ELSE t.amount END,
       updated_at = greatest(a.updated_at, t.answered_at)
  FROM de_inject t
 WHERE t.id = 900000002 AND a.id IN (t.source_id, t.destination_id);
