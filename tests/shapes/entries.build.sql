-- Clean workload for shape "entries" (schema en); run after entries.schema.sql, in one transaction.
-- Placeholders: {rows} entries in all, {accounts} ordinary accounts (>= 20).
--
-- Accounts 'user-1'..'user-{accounts}' and 'merchant-1'..'merchant-5', all starting at 0. Movements
-- follow the schedule of double_entry.build.sql: movement i = k * {accounts} + r belongs to user
-- u = r + 1; round 0 is a deposit for every user, then each user alternates deposits and payments
-- (phase by a hash bit of r), so a payment always follows a deposit one round earlier and is smaller
-- than it: no balance goes below zero, and a user's debits are 2 * {accounts} movements apart.
-- A deposit is one credit entry (money from outside); a payment is a debit of the user and a credit
-- of the payee (a merchant, or another user) at the same created_at. A few movements write two
-- entries on one account at the same created_at (one database transaction), ordered by id:
--   - every 1009th movement, when a deposit, also credits a bonus to the same user;
--   - every 997th movement, when a payment to a merchant, also debits the merchant a fee (1/50 of the
--     payment, plus 1) after crediting it (a merchant's fees are >= 997 movements apart).
-- Movements are cut where the {rows}th entry falls, and spread evenly over the 20 hours before
-- now - 1 minute (~1.1 s apart at the defaults, so merchants receive payments < 2 s apart).
-- Each account's entries chain exactly; accounts.balance is its last balance_after, updated_at the
-- created_at of its last entry.
CREATE TEMP TABLE en_mov ON COMMIT DROP AS
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
    SELECT g.*, 'user-' || (g.r + 1) AS account_id,
           (g.k >= 1 AND (g.k + g.b) % 2 = 1) AS is_payment
      FROM g
), d AS (
    SELECT c.*,
           CASE WHEN NOT c.is_payment THEN NULL
                WHEN c.h1 % 3 <> 0 THEN 'merchant-' || (1 + c.h4 % 5)
                ELSE 'user-' || (1 + (c.r + 1 + ((c.h4 / 5) * 65536 + c.h1) % (c.a - 1)) % c.a) END AS payee,
           CASE WHEN c.is_payment THEN 100 + c.h3 % (1000 + c.h2_prev % 49001 - 100)
                ELSE 1000 + c.h2 % 49001 END AS amount,
           CASE WHEN NOT c.is_payment AND c.i % 1009 = 500 THEN 100 + c.h3 % 901 END AS bonus
      FROM c
), e AS (
    SELECT d.*,
           CASE WHEN d.payee LIKE 'merchant-%' AND d.i % 997 = 400 THEN 1 + d.amount / 50 END AS fee
      FROM d
), f AS (
    SELECT e.*,
           CASE WHEN e.is_payment THEN 2 + (e.fee IS NOT NULL)::int ELSE 1 + (e.bonus IS NOT NULL)::int END AS ne
      FROM e
), s AS (
    SELECT f.*, sum(f.ne) OVER (ORDER BY f.i) - f.ne AS first_entry FROM f
)
SELECT * FROM s WHERE s.first_entry < s.n;

CREATE TEMP TABLE en_gen ON COMMIT DROP AS
WITH m AS (
    SELECT en_mov.*, max(en_mov.i) OVER () AS l FROM en_mov
), x AS (
    SELECT m.first_entry + e.s AS eno, e.account_id, e.amount,
           m.t_end - interval '1 microsecond' * ((m.l - m.i) * 72000000000 / (m.l + 1)) AS created_at
      FROM m
     CROSS JOIN LATERAL (VALUES
           (0, m.account_id, CASE WHEN m.is_payment THEN -m.amount ELSE m.amount END),
           (1, CASE WHEN m.is_payment THEN m.payee ELSE m.account_id END,
               CASE WHEN m.is_payment THEN m.amount ELSE m.bonus END),
           (2, m.payee, -m.fee)) e(s, account_id, amount)
     WHERE e.s < m.ne AND m.first_entry + e.s < m.n
)
SELECT x.eno + 1 AS id, x.account_id, x.amount, x.created_at,
       sum(x.amount) OVER (PARTITION BY x.account_id ORDER BY x.eno) AS balance_after
  FROM x;

INSERT INTO en.accounts (id, balance, updated_at)
SELECT a.id, coalesce(l.balance_after, 0), coalesce(l.created_at, now() - interval '21 hours')
  FROM (SELECT 'user-' || u AS id FROM generate_series(1, {accounts}) u
        UNION ALL
        SELECT 'merchant-' || m FROM generate_series(1, 5) m) a
  LEFT JOIN (SELECT DISTINCT ON (account_id) account_id, balance_after, created_at
               FROM en_gen ORDER BY account_id, id DESC) l ON l.account_id = a.id;

INSERT INTO en.entries (id, account_id, amount, balance_before, balance_after, created_at)
SELECT id, account_id, amount, balance_after - amount, balance_after, created_at FROM en_gen ORDER BY id;

ANALYZE en.accounts, en.entries;
