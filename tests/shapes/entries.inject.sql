-- Anomalies for shape "entries" (schema en); run after entries.build.sql, in one transaction. Each
-- anomaly is on a fresh account; entry ids 900000001… are above the clean ones; times relative to now().
-- Expected findings (README.md):
--   a) balance_chain    subject 'inject-chain', key '900000004' (balance_after = before + amount + 500)
--      balance_mismatch subject 'inject-chain' (balance 12000, sum of amounts 11500)
--   b) balance_chain    subject 'inject-gap',   key '900000009' (balance_before 3700, previous
--                       balance_after 4000: a missing -300); no balance_mismatch: the balance is the
--                       sum of the amounts (5300), which is 300 more than the last balance_after (5000)
--   c) concurrent_txn   subject 'inject-double', key '900000012' (two debits 0.5 s apart)
INSERT INTO en.accounts (id, balance, updated_at) VALUES
    ('inject-chain', 0, now()),
    ('inject-gap', 0, now()),
    ('inject-double', 0, now());

INSERT INTO en.entries (id, account_id, amount, balance_before, balance_after, created_at)
SELECT v.id, v.account_id, v.amount, v.balance_before, v.balance_after, now() - make_interval(secs => v.ago)
  FROM (VALUES
    -- a) three good entries, one that does not add up (+500), two good ones chained on from it
    (900000001::bigint, 'inject-chain', 10000::bigint, 0::bigint, 10000::bigint, 170.0),
    (900000002, 'inject-chain', -2000, 10000, 8000, 150.0),
    (900000003, 'inject-chain', 3000, 8000, 11000, 130.0),
    (900000004, 'inject-chain', -1000, 11000, 10500, 110.0),
    (900000005, 'inject-chain', 2000, 10500, 12500, 90.0),
    (900000006, 'inject-chain', -500, 12500, 12000, 70.0),
    -- b) a missing link: 900000009 starts from 3700 where 900000008 ended at 4000
    (900000007, 'inject-gap', 5000, 0, 5000, 165.0),
    (900000008, 'inject-gap', -1000, 5000, 4000, 145.0),
    (900000009, 'inject-gap', 2000, 3700, 5700, 125.0),
    (900000010, 'inject-gap', -700, 5700, 5000, 105.0),
    -- c) a credit, then two debits 0.5 s apart
    (900000011, 'inject-double', 20000, 0, 20000, 100.0),
    (900000012, 'inject-double', -3000, 20000, 17000, 60.0),
    (900000013, 'inject-double', -4000, 17000, 13000, 59.5)
  ) v(id, account_id, amount, balance_before, balance_after, ago);

-- inject-chain and inject-double: the last balance_after; inject-gap: the sum of its amounts
UPDATE en.accounts a
   SET balance = CASE WHEN a.id = 'inject-gap' THEN l.total ELSE l.last_after END,
       updated_at = l.last_at
  FROM (SELECT account_id, sum(amount) AS total,
               (array_agg(balance_after ORDER BY created_at DESC, id DESC))[1] AS last_after,
               max(created_at) AS last_at
          FROM en.entries
         WHERE account_id IN ('inject-chain', 'inject-gap', 'inject-double')
         GROUP BY account_id) l
 WHERE a.id = l.account_id;
