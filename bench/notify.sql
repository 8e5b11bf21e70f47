-- The notification figures (bench/notify.py).

-- query: receiver
-- one webhook receiver, every severity, resolutions not sent (the figures count what opens)
with r as (
    insert into monitor.receivers (name, type, config) values ('bench', 'webhook', jsonb_build_object('url', %(url)s::text))
)
insert into monitor.routes (position, receiver, send_resolved) values (1, 'bench', false)

-- query: failed_debit
-- one failed debit that took the balance, written now
with a as (
    insert into ledger.accounts (account_id, balance) values ('notify-bench', 100) on conflict (account_id) do nothing
)
insert into ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after, created_at, updated_at)
values (%(id)s, 'notify-bench', -5, 'failed', 100, 95, now(), now())

-- query: negative_accounts
-- N accounts with a negative balance: N negative_balance events at the next run
insert into ledger.accounts (account_id, balance)
select %(prefix)s::text || g, -g from generate_series(1, %(n)s::integer) g

-- query: clear_accounts
update ledger.accounts set balance = 0 where balance < 0

-- query: digests_off
update monitor.settings set value = '1000000000' where key = 'notify.digest_threshold'

-- query: digests_default
update monitor.settings set value = '20' where key = 'notify.digest_threshold'
