-- The queries of a steady-state cycle (bench/measure.py), each a `-- query: NAME` block.
-- %(window)s: the interval of new rows, counted back from now().

-- query: floor_transactions
select count(*), sum(amount) from ledger.transactions
 where created_at >= now() - %(window)s::interval and created_at <= now()

-- query: floor_scans
select count(*), count(device_id) from ledger.scans
 where scanned_at >= now() - %(window)s::interval and scanned_at <= now()

-- query: keyed_read
-- the new transactions with their card read by key: the least any per-account balance check does
select count(*), sum(a.balance) from ledger.transactions t
 cross join lateral (select c.balance from ledger.accounts c where c.account_id = t.account_id limit 1) a
 where t.created_at >= now() - %(window)s::interval and t.created_at <= now()

-- query: previous_run_a_minute_ago
update monitor.watermarks
   set high_water = high_water + ((now() - interval '1 minute') - (select max(high_water) from monitor.watermarks))

-- query: seen_by_previous_cycle
-- the previous cycle's snapshot mark for the sustained figure: the transaction id of the newest
-- minute's rows, written in their own subtransaction after the older minutes' one, so that the
-- older minutes count as seen by the previous cycle and the newest not
update monitor.watermarks set seen_xmin = (
    select (s.r - mod(s.r - t.xmin::text::bigint, 4294967296))::text::xid8
      from (select pg_snapshot_xmax(pg_current_snapshot())::text::bigint as r) s,
           (select xmin from ledger.transactions order by created_at desc limit 1) t)
 where seen_xmin is not null

-- query: events_opened
select coalesce(sum(events_opened), 0)::int from monitor.detector_runs where started_at >= now()
