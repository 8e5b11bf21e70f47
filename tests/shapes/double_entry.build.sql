-- Clean workload for shape "double_entry" (schema de); run after double_entry.schema.sql, in one
-- transaction. Placeholders: {rows} transfers in all, {accounts} ordinary accounts (>= 20).
--
-- Accounts: 1 'world' (allow_negative_balance; pays every deposit), 2..6 'merchant-1'..'merchant-5',
-- 11..10+{accounts} 'user-1'..'user-{accounts}'. Transfer i (0-based, id i+1) is created at
-- now - 1 minute - (n-1-i) * 72000 s / n, so the ledger covers the last ~20 hours.
--
-- Schedule: i = k * {accounts} + r; row i belongs to user u = r + 1, so each user has one row every
-- {accounts} rows (1,440 s at the defaults). Round k = 0 is a deposit (world -> user) for every user;
-- from round 1 on, a user's rows alternate between a deposit and a payment (to a merchant, or to
-- another user), the phase chosen by a hash bit of r. A payment follows its user's deposit one round
-- earlier and pays less than that deposit, so no user's balance ever goes below zero; a user's
-- payments are 2 * {accounts} rows (2,880 s) apart. Merchants receive payments back to back (some
-- less than 2 s apart). Every 50th payment of a user is REJECTED (the phase set by the user: ~1 % of
-- all rows, spread evenly, never two failures of one account without a success between them);
-- rejected payments always go to a merchant. Deposits never fail. The last 12 transfers (the last
-- ~9 s before now - 1 minute) stay QUEUED; every other transfer is answered 1-30 s after it was
-- queued. Balances are the sum of APPLIED transfers (in minus out); updated_at is the time of the
-- account's last APPLIED state row.
CREATE TEMP TABLE de_gen ON COMMIT DROP AS
WITH p AS (
    SELECT {rows}::bigint AS n, {accounts}::bigint AS a,
           (now() AT TIME ZONE 'UTC') - interval '1 minute' AS t_end,
           12::bigint AS n_pending
), g AS (
    SELECT i, i / p.a AS k, i % p.a AS r, p.n, p.a, p.t_end, p.n_pending,
           -- 16-bit multiplicative hashes of the row index
           (((i + 1) * 2654435761 % 4294967296) >> 16) AS h1,
           (((i + 7) * 2246822519 % 4294967296) >> 16) AS h2,
           (((i + 13) * 3266489917 % 4294967296) >> 16) AS h3,
           (((i + 29) * 668265263 % 4294967296) >> 16) AS h4,
           -- h2 of the row one round earlier: the deposit a payment is paid out of
           (((i - p.a + 7) * 2246822519 % 4294967296) >> 16) AS h2_prev,
           -- the user's phase: whether its payments fall in odd or even rounds
           (((i % p.a + 3) * 2654435761 % 4294967296) >> 20) % 2 AS b
      FROM p, generate_series(0::bigint, p.n - 1) AS i
), c AS (
    SELECT g.*, g.r + 1 AS u,
           (g.k >= 1 AND (g.k + g.b) % 2 = 1) AS is_payment,
           g.i >= g.n - g.n_pending AS is_pending
      FROM g
), d AS (
    SELECT c.*,
           c.is_payment AND NOT c.is_pending AND ((c.k - 1 - c.b) / 2 + c.u) % 50 = 0 AS is_rejected,
           c.t_end - interval '1 microsecond' * ((c.n - 1 - c.i) * 72000000000 / c.n) AS created_at
      FROM c
)
SELECT d.i + 1 AS id,
       CASE WHEN d.is_payment THEN 10 + d.u ELSE 1 END AS source_id,
       CASE WHEN NOT d.is_payment THEN 10 + d.u
            WHEN d.is_rejected OR d.h1 % 3 <> 0 THEN 2 + d.h4 % 5                  -- a merchant
            ELSE 11 + (d.r + 1 + ((d.h4 / 5) * 65536 + d.h1) % (d.a - 1)) % d.a END AS destination_id,  -- another user
       CASE WHEN d.is_payment THEN 100 + d.h3 % (1000 + d.h2_prev % 49001 - 100)  -- < that deposit
            ELSE 1000 + d.h2 % 49001 END AS amount,
       d.created_at,
       CASE WHEN d.is_pending THEN NULL WHEN d.is_rejected THEN 'REJECTED' ELSE 'APPLIED' END AS answer,
       d.created_at + interval '1 millisecond' * (1000 + (d.h1 * 7 + d.h4) % 29001) AS answered_at
  FROM d;

INSERT INTO de.accounts (id, name, allow_negative_balance, balance, created_at, updated_at)
SELECT x.id, x.name, x.id = 1, 0, t.t0, t.t0
  FROM (SELECT (now() AT TIME ZONE 'UTC') - interval '21 hours' AS t0) t,
       LATERAL (SELECT 1::bigint AS id, 'world' AS name
                UNION ALL
                SELECT 1 + m, 'merchant-' || m FROM generate_series(1::bigint, 5) m
                UNION ALL
                SELECT 10 + u, 'user-' || u FROM generate_series(1::bigint, {accounts}) u) x;

INSERT INTO de.transfers (id, source_account_id, destination_account_id, amount, created_at)
SELECT id, source_id, destination_id, amount, created_at FROM de_gen ORDER BY id;

INSERT INTO de.transfer_states (id, transfer_id, state, created_at)
SELECT s.id, s.transfer_id, s.state, s.created_at
  FROM (SELECT 2 * id - 1 AS id, id AS transfer_id, 'QUEUED' AS state, created_at FROM de_gen
        UNION ALL
        SELECT 2 * id, id, answer, answered_at FROM de_gen WHERE answer IS NOT NULL) s
 ORDER BY s.id;

UPDATE de.accounts a
   SET balance = m.balance, updated_at = m.last_applied
  FROM (SELECT l.account_id, sum(l.delta) AS balance, max(l.at) AS last_applied
          FROM (SELECT source_id AS account_id, -amount AS delta, answered_at AS at
                  FROM de_gen WHERE answer = 'APPLIED'
                UNION ALL
                SELECT destination_id, amount, answered_at
                  FROM de_gen WHERE answer = 'APPLIED') l
         GROUP BY l.account_id) m
 WHERE a.id = m.account_id;

ANALYZE de.accounts, de.transfers, de.transfer_states;
