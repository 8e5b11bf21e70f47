-- Benchmark ledger: fills the reference ledger (ledger.accounts, ledger.transactions, ledger.scans)
-- at a chosen scale, entirely inside PostgreSQL with generate_series.
--
-- Parameters are read from custom settings, so the file also runs under psql:
--   SET bench.accounts = 1000000; SET bench.transactions = 10000000; SET bench.scans = 10000000;
--   SET bench.days = 30; SET bench.anomalies = 20; \i bench/generate.sql
-- bench/run.py executes it step by step (the `-- step:` lines) and times each step.
--
-- The mix: 30 days of history ending when generation starts, with a day/night rhythm; 30% of the
-- traffic on the busiest 1% of cards; 75% payments (1-25), 25% top-ups (10-110); 97% success, 3%
-- failed; running balance_before/balance_after per card; account balances consistent with their
-- history. A sprinkle of anomalies (bench.anomalies of each kind, all in the last 20 hours) gives
-- every detector something to find without letting events dominate a cycle.
-- Rows are written in time order, as an append-only ledger would be. Secondary indexes are dropped
-- for the load and rebuilt afterwards with their original definitions; foreign keys are not
-- checked during the load (session_replication_role = replica), the data is consistent by
-- construction.

-- step: setup
CREATE SCHEMA IF NOT EXISTS bench;
CREATE SEQUENCE IF NOT EXISTS bench.ids;
CREATE SEQUENCE IF NOT EXISTS bench.cards;
DROP TABLE IF EXISTS bench.params;
CREATE TABLE bench.params AS
SELECT current_setting('bench.accounts')::bigint      AS accounts,
       current_setting('bench.transactions')::bigint  AS transactions,
       current_setting('bench.scans')::bigint         AS scans,
       current_setting('bench.days')::integer         AS days,
       current_setting('bench.anomalies')::integer    AS anomalies,
       date_trunc('second', now())                    AS end_ts,
       date_trunc('second', now()) - make_interval(days => current_setting('bench.days')::integer) AS start_ts;

-- Card id of card number i.
CREATE OR REPLACE FUNCTION bench.acct(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'c' || lpad(i::text, 9, '0') $$;

-- Opening balance of card i: 200.00 .. 999.99, spread deterministically.
CREATE OR REPLACE FUNCTION bench.opening(i bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 200 + ((i * 7919) % 80000) / 100.0 $$;

-- A random card number: 30% of the traffic comes from the busiest 1% of cards.
CREATE OR REPLACE FUNCTION bench.any_account(n bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN random() < 0.3 THEN 1 + floor(random() * greatest(n / 100, 1))
                ELSE 1 + floor(random() * n) END::bigint
$$;

-- The time at fraction f of the period, with a day/night rhythm (the density varies 1:4 over a day).
CREATE OR REPLACE FUNCTION bench.at(f float8, start_ts timestamptz, days integer) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT start_ts + make_interval(secs => s + 0.6 * 86400 / (2 * pi()) * sin(2 * pi() * s / 86400))
      FROM (SELECT f * days * 86400 AS s) x
$$;

-- A random amount: 75% payments of 1..25, 25% top-ups of 10..110 (balances drift upwards, so few
-- cards end up overdrawn by chance).
CREATE OR REPLACE FUNCTION bench.amount(r1 float8, r2 float8) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN r1 < 0.75 THEN -round((1 + r2 * 24)::numeric, 2) ELSE round((10 + r2 * 100)::numeric, 2) END
$$;

-- step: empty
TRUNCATE ledger.transactions, ledger.scans, ledger.accounts;
DROP TABLE IF EXISTS bench.saved_indexes;
CREATE TABLE bench.saved_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
  FROM pg_index i
 WHERE i.indrelid IN ('ledger.transactions'::regclass, 'ledger.scans'::regclass, 'ledger.accounts'::regclass)
   AND NOT i.indisprimary AND NOT i.indisunique;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT name FROM bench.saved_indexes LOOP
        EXECUTE 'DROP INDEX ' || r.name;
    END LOOP;
END
$$;

-- step: transactions
SET session_replication_role = replica;
SELECT setseed(0.42);
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,
                                 device_id, created_at, updated_at)
SELECT 't' || lpad(x.i::text, 12, '0'), bench.acct(x.acct), x.amount, x.status,
       bench.opening(x.acct) + x.run - x.credited, bench.opening(x.acct) + x.run,
       x.device_id, x.created_at, x.created_at
  FROM (
        SELECT g.*,
               CASE WHEN g.status = 'success' THEN g.amount ELSE 0 END AS credited,
               sum(CASE WHEN g.status = 'success' THEN g.amount ELSE 0 END)
                   OVER (PARTITION BY g.acct ORDER BY g.created_at, g.i ROWS UNBOUNDED PRECEDING) AS run
          FROM (
                SELECT s.i, bench.any_account(p.accounts) AS acct,
                       bench.amount(random(), random()) AS amount,
                       CASE WHEN random() < 0.97 THEN 'success' ELSE 'failed' END AS status,
                       'pos' || lpad((1 + floor(random() * 2000))::text, 4, '0') AS device_id,
                       least(bench.at((s.i - random()) / p.transactions, p.start_ts, p.days), p.end_ts) AS created_at
                  FROM bench.params p, generate_series(1::bigint, p.transactions) AS s(i)
               ) g
       ) x
 ORDER BY x.i;
RESET session_replication_role;

-- step: scans
SET session_replication_role = replica;
SELECT setseed(0.43);
INSERT INTO ledger.scans (scan_id, account_id, device_id, scanned_at)
SELECT 's' || lpad(s.i::text, 12, '0'), bench.acct(bench.any_account(p.accounts)),
       'rdr' || lpad((1 + floor(random() * 2000))::text, 4, '0'),
       least(bench.at((s.i - random()) / p.scans, p.start_ts, p.days), p.end_ts)
  FROM bench.params p, generate_series(1::bigint, p.scans) AS s(i);
RESET session_replication_role;

-- step: anomalies
SET session_replication_role = replica;
-- Each kind hits bench.anomalies distinct cards ((k * prime) mod accounts is one-to-one), spread
-- over the last 20 hours and at least 15 minutes old.
-- failed_debit: a failed payment that still lowered the recorded balance
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,
                                 device_id, created_at, updated_at)
SELECT 'ta-fd-' || k, bench.acct(1 + (k * 104729) % p.accounts), -12.50, 'failed', 500.00, 487.50, 'pos0001',
       p.end_ts - interval '15 minutes' - (k::float8 / p.anomalies) * interval '20 hours',
       p.end_ts - interval '15 minutes' - (k::float8 / p.anomalies) * interval '20 hours'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k;
-- consecutive_failures: three failed attempts a minute apart
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, device_id, created_at, updated_at)
SELECT 'ta-cf-' || k || '-' || j, bench.acct(1 + (k * 1299709 + 11) % p.accounts), -20.00, 'failed', 'pos0002',
       p.end_ts - interval '20 minutes' - (k::float8 / p.anomalies) * interval '20 hours' + j * interval '1 minute',
       p.end_ts - interval '20 minutes' - (k::float8 / p.anomalies) * interval '20 hours' + j * interval '1 minute'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k, generate_series(0, 2) j;
-- stuck_pending: payments that never left `pending`
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, device_id, created_at, updated_at)
SELECT 'ta-sp-' || k, bench.acct(1 + (k * 15485863 + 23) % p.accounts), -8.00, 'pending', 'pos0003',
       p.end_ts - interval '30 minutes' - (k::float8 / p.anomalies) * interval '20 hours',
       p.end_ts - interval '30 minutes' - (k::float8 / p.anomalies) * interval '20 hours'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k;
-- concurrent_txn: two successful payments 1 second apart (no recorded balances)
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, device_id, created_at, updated_at)
SELECT 'ta-ct-' || k || '-' || j, bench.acct(1 + (k * 179424673 + 31) % p.accounts), -5.00, 'success', 'pos0004',
       p.end_ts - interval '25 minutes' - (k::float8 / p.anomalies) * interval '20 hours' + j * interval '1 second',
       p.end_ts - interval '25 minutes' - (k::float8 / p.anomalies) * interval '20 hours' + j * interval '1 second'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k, generate_series(0, 1) j;
-- duplicate_scan: a card read twice 2 seconds apart
INSERT INTO ledger.scans (scan_id, account_id, device_id, scanned_at)
SELECT 'sa-ds-' || k || '-' || j, bench.acct(1 + (k * 32452843 + 41) % p.accounts), 'rdr0001',
       p.end_ts - interval '35 minutes' - (k::float8 / p.anomalies) * interval '20 hours' + j * interval '2 seconds'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k, generate_series(0, 1) j;
RESET session_replication_role;

-- step: accounts
SET session_replication_role = replica;
INSERT INTO ledger.accounts (account_id, balance, opening_balance, created_at, updated_at)
SELECT bench.acct(a), bench.opening(a) + coalesce(t.success_sum, 0), bench.opening(a),
       p.start_ts - interval '1 day', coalesce(t.last_at, p.start_ts - interval '1 day')
  FROM bench.params p
 CROSS JOIN generate_series(1::bigint, p.accounts) a
  LEFT JOIN (SELECT account_id, sum(amount) FILTER (WHERE status = 'success') AS success_sum,
                    max(created_at) AS last_at
               FROM ledger.transactions GROUP BY account_id) t ON t.account_id = bench.acct(a)
 ORDER BY a;
RESET session_replication_role;

-- step: account_anomalies
SET session_replication_role = replica;
-- negative_balance: an overdraft recorded as a successful payment (balance stays consistent)
WITH picked AS (
    SELECT k, bench.acct(1 + (k * 49979687 + 53) % p.accounts) AS account_id,
           p.end_ts - interval '40 minutes' - (k::float8 / p.anomalies) * interval '20 hours' AS at
      FROM bench.params p, generate_series(1::bigint, p.anomalies) k
), ins AS (
    INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,
                                     device_id, created_at, updated_at)
    SELECT 'ta-nb-' || k, a.account_id, -(a.balance + 50), 'success', a.balance, -50, 'pos0005', at, at
      FROM picked JOIN ledger.accounts a USING (account_id)
    RETURNING account_id, amount, created_at
)
UPDATE ledger.accounts a SET balance = a.balance + ins.amount, updated_at = ins.created_at
  FROM ins WHERE a.account_id = ins.account_id;
-- balance_mismatch: a balance changed by 5.00 without any transaction
UPDATE ledger.accounts a SET balance = a.balance + 5.00,
       updated_at = p.end_ts - interval '45 minutes' - (k::float8 / p.anomalies) * interval '20 hours'
  FROM bench.params p, generate_series(1::bigint, p.anomalies) k
 WHERE a.account_id = bench.acct(1 + (k * 86028121 + 61) % p.accounts);
RESET session_replication_role;

-- step: indexes
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT def FROM bench.saved_indexes LOOP
        EXECUTE r.def;
    END LOOP;
END
$$;

-- step: vacuum_analyze
VACUUM ANALYZE ledger.accounts, ledger.transactions, ledger.scans;
