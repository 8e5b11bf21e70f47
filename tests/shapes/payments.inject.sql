-- Anomalies for shape "payments" (schema pay); run after payments.build.sql, in one transaction.
-- Each anomaly is on a fresh wallet md5('inject-x')::uuid (owner 'inject-x'); its payments are
-- md5('inject-x-N')::uuid. Times are relative to now().
-- Expected findings (README.md):
--   a) failed_debit         subject 733a9280-4e42-e144-5e8a-cfd007228c87 (inject-a),
--                           key 0e6d55ec-35c0-901f-1835-a6d72c73c194 (inject-a-2, declined, took 5000)
--      balance_mismatch     subject 733a9280-4e42-e144-5e8a-cfd007228c87 (available 15000, history 20000)
--   b) stuck_pending        subject 9a0affb1-050c-a571-6cb8-e91dfd53952e (inject-b),
--                           key 24203cf4-fe21-5801-73d8-5e8f20d73786 (inject-b-2, processing for 30 minutes)
--   c) consecutive_failures subject 0dd1490b-f6fe-7143-f53e-0a17318a20c4 (inject-c),
--                           key 4993e034-c020-51df-c7e2-42144c03b3fc (inject-c-2, first of 3 declined debits)
INSERT INTO pay.wallets (id, owner, created_at)
SELECT md5(o)::uuid, o, now() - interval '1 hour'
  FROM unnest(ARRAY['inject-a', 'inject-b', 'inject-c']) o;

CREATE TEMP TABLE pay_inject ON COMMIT DROP AS
SELECT md5(v.tag)::uuid AS id, md5(v.owner)::uuid AS wallet_id, v.direction, v.amount_cents, v.status,
       now() - make_interval(secs => v.created_ago) AS created_at,
       now() - make_interval(secs => v.updated_ago) AS updated_at
  FROM (VALUES
    -- a) a top-up, then a declined debit that took its 5000 all the same (see the UPDATE below)
    ('inject-a-1', 'inject-a', 'credit', 20000::bigint, 'succeeded', 110.0, 108.0),
    ('inject-a-2', 'inject-a', 'debit', 5000, 'declined', 90.0, 88.0),
    -- b) a top-up, then a debit still 'processing' after 30 minutes
    ('inject-b-1', 'inject-b', 'credit', 30000, 'succeeded', 2100.0, 2098.0),
    ('inject-b-2', 'inject-b', 'debit', 7000, 'processing', 1800.0, 1800.0),
    -- c) a top-up, then 3 declined debits in a row, 30 s apart
    ('inject-c-1', 'inject-c', 'credit', 30000, 'succeeded', 200.0, 198.0),
    ('inject-c-2', 'inject-c', 'debit', 2000, 'declined', 150.0, 149.0),
    ('inject-c-3', 'inject-c', 'debit', 3000, 'declined', 120.0, 119.0),
    ('inject-c-4', 'inject-c', 'debit', 4000, 'declined', 90.0, 89.0)
  ) v(tag, owner, direction, amount_cents, status, created_ago, updated_ago);

INSERT INTO pay.payments (id, wallet_id, direction, amount_cents, status, created_at, updated_at)
SELECT id, wallet_id, direction, amount_cents, status, created_at, updated_at FROM pay_inject ORDER BY created_at;

-- balances from the succeeded payments …
INSERT INTO pay.balances (wallet_id, available_cents, updated_at)
SELECT w.id, coalesce(sum(CASE p.direction WHEN 'credit' THEN p.amount_cents ELSE -p.amount_cents END)
                      FILTER (WHERE p.status = 'succeeded'), 0),
       coalesce(max(p.updated_at) FILTER (WHERE p.status = 'succeeded'), w.created_at)
  FROM pay.wallets w
  LEFT JOIN pay_inject p ON p.wallet_id = w.id
 WHERE w.owner LIKE 'inject-%'
 GROUP BY w.id, w.created_at;

-- … and a) the declined debit inject-a-2 lowered inject-a's balance by its amount, just now
UPDATE pay.balances b
   SET available_cents = b.available_cents - p.amount_cents, updated_at = now()
  FROM pay_inject p
 WHERE p.id = md5('inject-a-2')::uuid AND b.wallet_id = p.wallet_id;
