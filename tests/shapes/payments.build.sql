-- Clean workload for shape "payments" (schema pay); run after payments.schema.sql, in one
-- transaction. Placeholders: {rows} payments in all, {accounts} ordinary wallets (>= 20).
--
-- Wallets md5('w' || u)::uuid (owner 'user-u', u = 1..{accounts}) and md5('m' || m)::uuid (owner
-- 'merchant-m', m = 1..5). Movements follow the schedule of double_entry.build.sql: movement
-- i = k * {accounts} + r belongs to user u = r + 1; round 0 is a top-up for every user, then each
-- user alternates top-ups and payments (phase by a hash bit of r), so a payment always follows a
-- top-up one round earlier and is smaller than it: no balance goes below zero, and a user's debits
-- are 2 * {accounts} movements apart. A top-up is one succeeded credit. A payment is a debit of the
-- user and, when it succeeded, a credit of the payee (a merchant, or another user) at the same
-- created_at. Every 33rd payment of a user is declined (~1 % of all rows, never two of one wallet
-- without a success between them) and every 66th (another phase) canceled (~0.5 %); neither writes
-- a payee credit nor moves money. Movements are cut where the {rows}th payment falls and spread
-- evenly over the 20 hours before now - 1 minute; the rows of the last 8 movements (the last ~10 s)
-- are still 'processing' (updated_at = created_at); every other row was updated 1-30 s after it was
-- created. Payment ids are md5('p' || n)::uuid, n = 1..{rows}. balances.updated_at is the updated_at
-- of the wallet's last succeeded payment.
CREATE TEMP TABLE pay_mov ON COMMIT DROP AS
WITH p AS (
    SELECT {rows}::bigint AS n, {accounts}::bigint AS a, now() - interval '1 minute' AS t_end
), g AS (
    SELECT i, i / p.a AS k, i % p.a AS r, p.n, p.a, p.t_end,
           (((i + 1) * 2654435761 % 4294967296) >> 16) AS h1,
           (((i + 7) * 2246822519 % 4294967296) >> 16) AS h2,
           (((i + 13) * 3266489917 % 4294967296) >> 16) AS h3,
           (((i + 29) * 668265263 % 4294967296) >> 16) AS h4,
           (((i - p.a + 7) * 2246822519 % 4294967296) >> 16) AS h2_prev,
           (((i % p.a + 3) * 2654435761 % 4294967296) >> 20) % 2 AS b
      FROM p, generate_series(0::bigint, p.n - 1) AS i
), c AS (
    SELECT g.*, md5('w' || (g.r + 1))::uuid AS wallet_id,
           (g.k >= 1 AND (g.k + g.b) % 2 = 1) AS is_payment
      FROM g
), d AS (
    SELECT c.*,
           CASE WHEN NOT c.is_payment THEN 'succeeded'
                WHEN ((c.k - 1 - c.b) / 2 + c.r + 1) % 33 = 0 THEN 'declined'
                WHEN ((c.k - 1 - c.b) / 2 + c.r + 1) % 66 = 17 THEN 'canceled'
                ELSE 'succeeded' END AS status,
           CASE WHEN NOT c.is_payment THEN NULL
                WHEN c.h1 % 3 <> 0 THEN md5('m' || (1 + c.h4 % 5))::uuid
                ELSE md5('w' || (1 + (c.r + 1 + ((c.h4 / 5) * 65536 + c.h1) % (c.a - 1)) % c.a))::uuid
           END AS payee,
           CASE WHEN c.is_payment THEN 100 + c.h3 % (1000 + c.h2_prev % 49001 - 100)
                ELSE 1000 + c.h2 % 49001 END AS amount,
           interval '1 millisecond' * (1000 + (c.h1 * 7 + c.h4) % 29001) AS delay
      FROM c
), e AS (
    SELECT d.*, CASE WHEN d.is_payment AND d.status = 'succeeded' THEN 2 ELSE 1 END AS ne FROM d
), s AS (
    SELECT e.*, sum(e.ne) OVER (ORDER BY e.i) - e.ne AS first_row FROM e
)
SELECT * FROM s WHERE s.first_row < s.n;

CREATE TEMP TABLE pay_gen ON COMMIT DROP AS
WITH m AS (
    SELECT pay_mov.*, max(pay_mov.i) OVER () AS l,
           pay_mov.t_end - interval '1 microsecond'
               * ((max(pay_mov.i) OVER () - pay_mov.i) * 72000000000 / (max(pay_mov.i) OVER () + 1)) AS created_at
      FROM pay_mov
), x AS (
    SELECT m.first_row + e.s + 1 AS no, e.wallet_id, e.direction, m.amount,
           CASE WHEN m.i > m.l - 8 THEN 'processing' ELSE m.status END AS status,
           m.created_at,
           CASE WHEN m.i > m.l - 8 THEN m.created_at ELSE m.created_at + m.delay END AS updated_at
      FROM m
     CROSS JOIN LATERAL (VALUES
           (0, m.wallet_id, CASE WHEN m.is_payment THEN 'debit' ELSE 'credit' END),
           (1, m.payee, 'credit')) e(s, wallet_id, direction)
     WHERE e.s < m.ne AND m.first_row + e.s < m.n
)
SELECT md5('p' || x.no)::uuid AS id, x.* FROM x;

INSERT INTO pay.wallets (id, owner, created_at)
SELECT md5(w.tag)::uuid, w.owner, now() - interval '21 hours'
  FROM (SELECT 'w' || u AS tag, 'user-' || u AS owner FROM generate_series(1, {accounts}) u
        UNION ALL
        SELECT 'm' || m, 'merchant-' || m FROM generate_series(1, 5) m) w;

INSERT INTO pay.payments (id, wallet_id, direction, amount_cents, status, created_at, updated_at)
SELECT id, wallet_id, direction, amount, status, created_at, updated_at FROM pay_gen ORDER BY no;

INSERT INTO pay.balances (wallet_id, available_cents, updated_at)
SELECT w.id, coalesce(b.available, 0), coalesce(b.last_at, w.created_at)
  FROM pay.wallets w
  LEFT JOIN (SELECT wallet_id,
                    sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) AS available,
                    max(updated_at) AS last_at
               FROM pay_gen WHERE status = 'succeeded' GROUP BY wallet_id) b ON b.wallet_id = w.id;

ANALYZE pay.wallets, pay.balances, pay.payments;
