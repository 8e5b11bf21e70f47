-- A synthetic festival for `monitorctl demo`, generated inside PostgreSQL (set-based, no loops):
-- cashless cards topped up and spent at bars over the last few hours, one NFC scan before each
-- transaction, four earlier weeks of ordinary traffic in the current hour of the week (the baseline
-- of volume_anomaly), and a handful of injected incidents of every kind the detectors look for.
--
-- Reads three settings, set with set_config() before it runs:
--   festival.cards  number of ordinary cards (each makes 3 to 9 transactions)
--   festival.hours  how many hours of festival, ending now
--   festival.seed   random seed in [-1, 1], so the same settings give the same festival
-- Writes the reference ledger (ledger.accounts, ledger.transactions, ledger.scans), which must be empty.
--
-- Ordinary traffic is clean by construction: a card's transactions are at least 90 s apart (no bursts,
-- no double scans), payments never exceed the first top-up (no negative balance), a payment fails only
-- at an even position (never two failures in a row), failures keep the balance, nothing stays pending,
-- and about 1.5% fail (under failure_rate's 5%).

SELECT setseed(current_setting('festival.seed')::float8);

CREATE TEMP TABLE fest_settings ON COMMIT DROP AS
SELECT current_setting('festival.cards')::integer AS cards,
       make_interval(hours => current_setting('festival.hours')::integer) AS span,
       now() AS t_end;

CREATE TEMP TABLE fest_txn (
    account_id     text NOT NULL,
    amount         numeric NOT NULL,
    status         text NOT NULL,
    balance_before numeric,
    balance_after  numeric,
    device_id      text,
    created_at     timestamptz NOT NULL,
    scans          integer NOT NULL DEFAULT 1,   -- NFC scans just before it (2 or 3: a double scan)
    incident       text                          -- what was injected, for the demo's own check
) ON COMMIT DROP;

-- Ordinary cards: arrive at a random time, top up, then pay at bars every few minutes.
INSERT INTO fest_txn (account_id, amount, status, balance_before, balance_after, device_id, created_at)
WITH card AS (
    SELECT i, format('C-%s', lpad(i::text, 5, '0')) AS account_id,
           s.t_end - s.span + random() * (s.span - interval '30 minutes') AS arrival,
           3 + floor(random() * 7)::integer AS k
      FROM fest_settings s, generate_series(1, s.cards) AS i
), step AS (
    SELECT c.account_id, j,
           c.arrival + sum(CASE WHEN j = 1 THEN interval '0'
                                ELSE make_interval(secs => 90 + floor(random() * 1000)) END)
                       OVER (PARTITION BY c.account_id ORDER BY j) AS created_at,
           CASE WHEN j = 1 THEN 80 + 10 * floor(random() * 8)            -- first top-up: 80 .. 150
                WHEN random() < 0.12 THEN 20 + 10 * floor(random() * 4)   -- another top-up: 20 .. 50
                ELSE -(2.5 + 0.5 * floor(random() * 14)) END AS amount   -- a payment: 2.50 .. 9.00
      FROM card c, generate_series(1, c.k) AS j
), kept AS (
    SELECT st.*, CASE WHEN st.amount < 0 AND st.j % 2 = 0 AND random() < 0.06 THEN 'failed' ELSE 'success' END
                 AS status
      FROM step st, fest_settings s
     WHERE st.created_at < s.t_end - interval '1 minute'
)
SELECT account_id, amount, status,
       coalesce(sum(amount) FILTER (WHERE status = 'success')
                OVER (PARTITION BY account_id ORDER BY j ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
       coalesce(sum(amount) FILTER (WHERE status = 'success')
                OVER (PARTITION BY account_id ORDER BY j ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0),
       CASE WHEN amount > 0 THEN format('TOPUP-%s', 1 + floor(random() * 4))
            ELSE format('BAR-%s', lpad((1 + floor(random() * 12))::text, 2, '0')) END,
       created_at
  FROM kept;

-- The four previous weeks, same hour of the week as the last complete hour: ordinary traffic at a
-- fraction of the festival's (regular cards, one top-up each, no scans).
INSERT INTO fest_txn (account_id, amount, status, balance_before, balance_after, device_id, created_at, scans)
SELECT format('R-%s-%s', w, n), 20, 'success', 0, 20, 'TOPUP-1',
       date_trunc('hour', s.t_end) - interval '1 hour' - make_interval(days => 7 * w)
           + random() * interval '59 minutes',
       0
  FROM fest_settings s, generate_series(1, 4) AS w,
       LATERAL generate_series(1, greatest(20, s.cards / 12) + floor(random() * 20)::integer) AS n;

-- Incidents. Each uses cards of its own; times are relative to now.
INSERT INTO fest_txn (account_id, amount, status, balance_before, balance_after, device_id, created_at, scans, incident)
SELECT x.account_id, x.amount, x.status, x.before, x.after, x.device, s.t_end - x.ago, x.scans, x.incident
  FROM fest_settings s,
       (VALUES
        -- failed_debit (and, as the money is gone, balance_mismatch): a failed payment that took money
        ('C-90001', 100,    'success', 0,      100,    'TOPUP-2', interval '2 hours',     1, NULL),
        ('C-90001', -8.50,  'failed',  100,    91.50,  'BAR-07',  interval '50 minutes',  1, 'failed_debit'),
        ('C-90002', 60,     'success', 0,      60,     'TOPUP-1', interval '95 minutes',  1, NULL),
        ('C-90002', -12,    'failed',  60,     48,     'BAR-03',  interval '20 minutes',  1, 'failed_debit'),
        -- balance_mismatch: the card's balance is 25 more than its transactions explain (set below)
        ('C-90003', 50,     'success', 0,      50,     'TOPUP-3', interval '3 hours',     1, NULL),
        ('C-90003', -6,     'success', 50,     44,     'BAR-01',  interval '2 hours',     1, 'balance_mismatch'),
        -- consecutive_failures: four failed payments in five minutes
        ('C-90004', 40,     'success', 0,      40,     'TOPUP-4', interval '70 minutes',  1, NULL),
        ('C-90004', -7,     'failed',  40,     40,     'BAR-09',  interval '36 minutes',  1, 'consecutive_failures'),
        ('C-90004', -7,     'failed',  40,     40,     'BAR-09',  interval '35 minutes',  1, NULL),
        ('C-90004', -7,     'failed',  40,     40,     'BAR-09',  interval '33 minutes',  1, NULL),
        ('C-90004', -7,     'failed',  40,     40,     'BAR-09',  interval '31 minutes',  1, NULL),
        -- negative_balance: an offline terminal accepted more than the card held
        ('C-90005', 20,     'success', 0,      20,     'TOPUP-2', interval '80 minutes',  1, NULL),
        ('C-90005', -27.50, 'success', 20,     -7.50,  'BAR-11',  interval '15 minutes',  1, 'negative_balance'),
        -- stuck_pending: payments that never completed
        ('C-90006', 50,     'success', 0,      50,     'TOPUP-1', interval '2 hours',     1, NULL),
        ('C-90006', -9,     'pending', 50,     NULL,   'BAR-05',  interval '40 minutes',  1, 'stuck_pending'),
        ('C-90007', 30,     'success', 0,      30,     'TOPUP-3', interval '100 minutes', 1, NULL),
        ('C-90007', -4.50,  'pending', 30,     NULL,  'BAR-05',  interval '25 minutes',  1, 'stuck_pending'),
        -- duplicate_scan: a card tapped two and three times in a row for one payment
        ('C-90008', 40,     'success', 0,      40,     'TOPUP-4', interval '2 hours',     1, NULL),
        ('C-90008', -5,     'success', 40,     35,     'BAR-02',  interval '45 minutes',  3, 'duplicate_scan'),
        ('C-90009', 40,     'success', 0,      40,     'TOPUP-2', interval '90 minutes',  1, NULL),
        ('C-90009', -3.50,  'success', 40,     36.50,  'BAR-04',  interval '12 minutes',  2, 'duplicate_scan'),
        -- concurrent_txn: one tap charged twice, a second apart
        ('C-90010', 60,     'success', 0,      60,     'TOPUP-1', interval '150 minutes', 1, NULL),
        ('C-90010', -8,     'success', 60,     52,     'BAR-06',  interval '28 minutes',  1, 'concurrent_txn'),
        ('C-90010', -8,     'success', 52,     44,     'BAR-06',  interval '28 minutes' - interval '1 second', 0, NULL),
        -- balance_chain (and balance_mismatch): a terminal wrote 30 after a payment of 6 from 40
        ('C-90011', 40,     'success', 0,      40,     'TOPUP-3', interval '2 hours',     1, NULL),
        ('C-90011', -6,     'success', 40,     30,     'BAR-08',  interval '22 minutes',  1, 'balance_chain'),
        ('C-90011', -5,     'success', 30,     25,     'BAR-08',  interval '10 minutes',  1, NULL)
       ) AS x(account_id, amount, status, before, after, device, ago, scans, incident);

-- failure_rate: terminal BAR-12 declines every payment for the last ten minutes (cards of their own,
-- topped up earlier in the festival).
INSERT INTO fest_txn (account_id, amount, status, balance_before, balance_after, device_id, created_at, incident)
SELECT format('C-8%s', lpad(n::text, 4, '0')), t.amount, t.status, t.before, t.after, t.device,
       s.t_end - t.ago - make_interval(secs => n * 600.0 / greatest(30, s.cards / 20)),
       CASE WHEN n = 1 AND t.status = 'failed' THEN 'failure_rate' END
  FROM fest_settings s, generate_series(1, greatest(30, s.cards / 20)) AS n,
       (VALUES (50, 'success', 0, 50, 'TOPUP-3', interval '3 hours'),
               (-6, 'failed', 50, 50, 'BAR-12', interval '0')) AS t(amount, status, before, after, device, ago);

-- The ledger itself: ids in time order, balances as of the last transaction, scans just before.
INSERT INTO ledger.accounts (account_id, balance, opening_balance, created_at, updated_at)
SELECT account_id,
       (array_agg(balance_after ORDER BY created_at DESC) FILTER (WHERE balance_after IS NOT NULL))[1]
           + CASE WHEN account_id = 'C-90003' THEN 25 ELSE 0 END,
       0, min(created_at), max(created_at)
  FROM fest_txn GROUP BY account_id;

CREATE TEMP TABLE fest_ids ON COMMIT DROP AS
SELECT t.*, format('T%s', lpad(row_number() OVER (ORDER BY created_at, account_id)::text, 7, '0')) AS txn_id
  FROM fest_txn t;

INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after, device_id,
                                 created_at, updated_at)
SELECT txn_id, account_id, amount, status, balance_before, balance_after, device_id, created_at, created_at
  FROM fest_ids;

INSERT INTO ledger.scans (scan_id, account_id, device_id, scanned_at)
SELECT format('S%s', lpad(row_number() OVER (ORDER BY t.created_at, t.account_id, g)::text, 7, '0')),
       t.account_id, t.device_id,
       t.created_at - interval '3 seconds' + (g - 1) * interval '1.2 seconds'
  FROM fest_ids t, generate_series(1, t.scans) AS g;

SELECT (SELECT count(*) FROM ledger.accounts WHERE account_id LIKE 'C-%') AS cards,
       (SELECT count(*) FROM ledger.transactions t, fest_settings s WHERE t.created_at >= s.t_end - s.span)
           AS transactions,
       (SELECT count(*) FROM ledger.transactions t, fest_settings s WHERE t.created_at < s.t_end - s.span)
           AS baseline_transactions,
       (SELECT count(*) FROM ledger.scans) AS scans,
       (SELECT count(*) FROM fest_txn WHERE incident IS NOT NULL) AS incidents;
