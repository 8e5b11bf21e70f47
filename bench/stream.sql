-- The streaming figure (bench/stream.py): N events of failed_debit's size, written straight into
-- monitor.events (the figure is about reading them out, not about detection).

-- query: events
insert into monitor.events (detector, kind, severity, status, subject, dedup_key, txn_id, amount, summary,
                            evidence, first_seen, last_seen, occurrences)
select 'failed_debit', 'finding', 'critical', 'open', 'C-' || g, 'S' || g, 'S' || g, (g %% 100 + 1)::numeric,
       format('failed transaction S%%s on C-%%s still took %%s (balance 200 -> %%s)', g, g, g %% 100 + 1, 199 - g %% 100),
       jsonb_build_object('txn_id', 'S' || g, 'account_id', 'C-' || g, 'status', 'failed',
                          'amount', -(g %% 100 + 1), 'balance_before', 200, 'balance_after', 199 - g %% 100,
                          'lost', g %% 100 + 1, 'device_id', 'D-' || (g %% 50), 'created_at', now(),
                          'updated_at', null),
       now() - make_interval(secs => g), now() - make_interval(secs => g), 1
  from generate_series(%(from)s::integer, %(to)s::integer) g

-- query: count
select count(*) from monitor.events

-- query: keep_active
-- all but the newest N events resolved, as on a ledger watched for months (the server's figure)
update monitor.events set status = 'resolved', resolved_at = now(), resolved_by = 'bench'
 where status <> 'resolved' and event_id <= (select max(event_id) from monitor.events) - %(active)s::integer

-- query: active_floor
select count(*) from monitor.events where status <> 'resolved'
