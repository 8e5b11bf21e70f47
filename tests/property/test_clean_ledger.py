"""Zero false positives: on a clean, internally consistent ledger of 100k transactions every
detector runs once and opens nothing.

The ledger (built inside PostgreSQL) holds 2,000 accounts with 50 transactions each over the last
20 hours: top-ups and payments whose balance_before/balance_after chain from the opening balance
through the successful ones, failed transactions that left the balance as it was, account
balances equal to opening balance + the sum of successes, an account's transactions 24 minutes
apart (far outside concurrent_txn's window), scans 48 minutes apart (outside duplicate_scan's),
pending transactions only in the last 5 minutes, about 2.7% failures and never two in a row.
"""

from __future__ import annotations

ACCOUNTS = 2000
PER_ACCOUNT = 50
SPACING = 1440  # seconds between two transactions of one account

BUILD = f"""
insert into ledger.accounts (account_id, balance, opening_balance)
select 'card-' || lpad(a::text, 5, '0'), 0, 500 + a % 97
  from generate_series(1, {ACCOUNTS}) a;

with base as (
    select a, k,
           now() - interval '20 hours' + make_interval(secs => (k - 1) * {SPACING} + a % {SPACING}) as at
      from generate_series(1, {ACCOUNTS}) a, generate_series(1, {PER_ACCOUNT}) k
), shaped as (
    select a, k, at,
           case when (7 * a + k) % 37 = 0 then 'failed'
                when at > now() - interval '5 minutes' and (a + k) % 3 = 0 then 'pending'
                else 'success' end as status,
           case when k % 5 = 1 then 25.00 else -(1 + (a + k) % 9) - 0.50 end as amount
      from base
), chained as (
    select s.*,
           500 + a % 97 + coalesce(sum(amount) filter (where status = 'success')
               over (partition by a order by k rows between unbounded preceding and 1 preceding), 0) as before
      from shaped s
)
insert into ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,
                                 device_id, created_at)
select 'txn-' || lpad(a::text, 5, '0') || '-' || lpad(k::text, 2, '0'), 'card-' || lpad(a::text, 5, '0'),
       amount, status,
       case when status <> 'pending' then before end,
       case when status = 'success' then before + amount when status = 'failed' then before end,
       'dev-' || a % 50, at
  from chained;

update ledger.accounts a
   set balance = a.opening_balance + coalesce(
       (select sum(t.amount) from ledger.transactions t
         where t.account_id = a.account_id and t.status = 'success'), 0);

insert into ledger.scans (scan_id, account_id, device_id, scanned_at)
select 'scan-' || substr(t.txn_id, 5), t.account_id, t.device_id, t.created_at - interval '1 second'
  from ledger.transactions t
 where right(t.txn_id, 2)::integer % 2 = 0;
"""

# the premises of "clean", checked on the data itself
PREMISES = {
    "transactions": "select count(*) = 100000 from ledger.transactions",
    "balances add up": """select bool_and(a.balance = a.opening_balance + coalesce(s.total, 0))
                            from ledger.accounts a left join (select account_id, sum(amount) total
                            from ledger.transactions where status = 'success' group by 1) s using (account_id)""",
    "balances chain": """select bool_and(coalesce(balance_after = lead_before, true)) from (
                           select balance_after, lead(balance_before) over (partition by account_id order by created_at)
                                  as lead_before from ledger.transactions where status <> 'pending') x""",
    "no negative balance": "select bool_and(balance >= 0) from ledger.accounts",
    "failed took nothing": """select bool_and(balance_after = balance_before)
                                from ledger.transactions where status = 'failed'""",
    "some failures, some pending": """select count(*) filter (where status = 'failed') > 1000
                                         and count(*) filter (where status = 'pending') > 50
                                    from ledger.transactions""",
    "pending are young": """select coalesce(max(now() - created_at) < interval '10 minutes', true)
                              from ledger.transactions where status = 'pending'""",
    "failure share under 5% in the trailing window": """
        select count(*) filter (where status = 'failed') < 0.05 * count(*) and count(*) >= 20
          from ledger.transactions where status <> 'pending'
           and created_at between now() - interval '15 minutes' and now()""",
    "transactions apart": """select min(d) > interval '2 seconds' from (select created_at - lag(created_at)
                               over (partition by account_id order by created_at) d from ledger.transactions) x""",
    "scans apart": """select min(d) > interval '5 seconds' from (select scanned_at - lag(scanned_at)
                        over (partition by account_id order by scanned_at) d from ledger.scans) x""",
    "no two failures in a row": """select not exists (select from (select status, lag(status) over
                                     (partition by account_id order by created_at) prev
                                     from ledger.transactions where status <> 'pending') x
                                   where status = 'failed' and prev = 'failed')""",
}


def test_clean_ledger_opens_no_event(conn):
    with conn.transaction():  # one transaction: the data and every run see the same now()
        conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
        conn.execute(BUILD)
        broken = [name for name, sql in PREMISES.items() if not conn.execute(sql).fetchone()[0]]
        assert broken == [], f"the clean ledger is not clean: {broken}"
        # detector_health judges only scheduled detectors: treat every detector as scheduled, as
        # an install with pg_cron would, and run it last
        conn.execute("update monitor.detectors set scheduled = true")
        names = [r[0] for r in conn.execute(
            "select name from monitor.detectors order by name = 'detector_health', name")]
        assert len(names) == 11
        for name in names:
            conn.execute("select monitor.run_detector(%s, '-infinity')", (name,))
        runs = conn.execute("select detector, status, error from monitor.detector_runs").fetchall()
        events = conn.execute("select detector, dedup_key, summary from monitor.events").fetchall()
        assert sorted(r[0] for r in runs if r[1] == "ok") == sorted(names), runs
        assert events == []

        # the same runs do see this data: three anomalies, three events
        lost = conn.execute("select min(txn_id) from ledger.transactions where status = 'failed'").fetchone()[0]
        conn.execute("update ledger.transactions set balance_after = balance_before - 0.01 where txn_id = %s",
                     (lost,))
        conn.execute("update ledger.accounts set balance = balance + 0.02 where account_id = 'card-01000'")
        conn.execute("""insert into ledger.scans (scan_id, account_id, scanned_at)
                        select 'scan-again', account_id, scanned_at + interval '5 seconds'
                          from ledger.scans where scan_id = 'scan-00500-50'""")
        for name in ("failed_debit", "balance_mismatch", "duplicate_scan"):
            conn.execute("select monitor.run_detector(%s, '-infinity')", (name,))
        events = conn.execute("select detector, dedup_key from monitor.events order by 1").fetchall()
        assert events == [("balance_mismatch", "card-01000"), ("duplicate_scan", "scan-00500-50"),
                          ("failed_debit", lost)]
