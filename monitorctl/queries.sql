-- Every SQL statement monitorctl's Python runs, by name (monitorctl/db.py: query, rows, row, value,
-- stream): `-- name: NAME` then the SQL. docs/architecture.md, "Layers".

-- name: applied_migrations
select migration_id from monitor._yoyo_migration order by applied_at_utc, migration_id

-- name: store_mapping
insert into monitor.settings (key, value, description)
values ('sources.mapping', %s, 'the source mapping install rendered the source views from')
on conflict (key) do update set value = excluded.value

-- name: ensure_roles
-- the NOLOGIN roles (cluster-wide); a concurrent install into another database may create them at
-- the same moment: whoever comes second finds them (migration 0002.roles then leaves them alone)
do $$
declare
    r text;
begin
    foreach r in array array['monitor_reader', 'monitor_operator'] loop
        if not exists (select from pg_catalog.pg_roles where rolname = r) then
            begin
                execute pg_catalog.format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then null;
            end;
        end if;
    end loop;
end
$$

-- name: sources_problem
-- what is behind the source views that another role could change (sql/015_trust.sql), or NULL
select monitor.sources_problem()

-- name: pin_search_path
-- the role's own schemas, then this session's names resolved in pg_catalog only (monitorctl/db.py); and
-- no JIT: monitorctl's statements are short, and compiling one costs more than running it (60 ms for
-- status at a million events)
select pg_catalog.current_schemas(false)::pg_catalog.text[],
       pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),
       pg_catalog.set_config('jit', 'off', false)

-- name: current_schemas
select pg_catalog.current_schemas(false)::pg_catalog.text[]

-- name: unregistered_custom
-- custom detectors registered before their function's digest was kept: each run refuses them
select coalesce(string_agg(name, ', ' order by name), '') from monitor.detectors
where not builtin and function_digest is null

-- name: mark_installed
-- the schema version whose sql/ the last install applied: commands refuse to run on a half install
insert into monitor.settings (key, value, description)
values ('install.schema', %s, 'the schema version whose functions and views the last install created')
on conflict (key) do update set value = excluded.value

-- name: installed_schema
select (select value #>> '{}' from monitor.settings where key = 'install.schema')

-- name: missing_views
-- the views install makes over the mapped tables: a user's DROP ... CASCADE can take them away
select (select string_agg('view ' || v, ', ') from unnest(array['monitor.src_accounts', 'monitor.src_transactions',
        'monitor.src_scans', 'monitor.volume_hourly']) v where to_regclass(v) is null)

-- name: install_lock_holder
select l.pid, a.usename, a.application_name, a.backend_start
from pg_locks l left join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())
  and l.classid = %s and l.objid = %s and l.objsubid = 2
limit 1

-- name: uninstall_summary
select (select count(*) from monitor.events),
       (select count(*) from monitor.alert_history),
       (select count(*) from monitor.detectors),
       (select pg_has_role(nspowner, 'USAGE') from pg_namespace where nspname = 'monitor'),
       (select nspowner::regrole::text from pg_namespace where nspname = 'monitor')

-- name: cron_database_setting
select current_setting('cron.database_name', true)

-- name: has_cron_database_function
select to_regprocedure('monitor.cron_database()') is not null

-- name: scheduling_enabled
select coalesce((select (value #>> '{}')::boolean from monitor.settings where key = 'scheduling.enabled'), true)

-- name: set_scheduling
update monitor.settings set value = to_jsonb(%s::boolean) where key = 'scheduling.enabled'

-- name: cron_version
select extversion from pg_extension where extname = 'pg_cron'

-- name: enabled_detectors
-- and whether each runs every N seconds (monitor.schedule_seconds: the one pattern of such schedules)
select name, schedule, monitor.interval_ms(coalesce(params ->> 'timeout', '50 seconds')),
       monitor.schedule_seconds(schedule) is not null
from monitor.detectors where enabled order by name

-- name: cron_jobs
-- this database's jobs (monitorctl/schedule.py): the prefix, then a name without dots; run in this
-- database, or its prune-cron job, run in pg_cron's
select jobid, jobname, schedule, command, database, active from cron.job
where username = current_user
  and starts_with(jobname, %(prefix)s) and substr(jobname, length(%(prefix)s) + 1) ~ '^[a-z][a-z0-9_-]*$'
  and (database = %(dbname)s
       or (not %(local)s and jobname = %(prefix)s || 'prune-cron' and database = %(cron_db)s))
order by jobname

-- name: mark_scheduled
update monitor.detectors set scheduled = (name = any(%s)) where scheduled is distinct from (name = any(%s))

-- Operator commands: events, show, ack/resolve, status, detectors, prune (monitorctl/commands/).

-- name: events_list
select e.event_id, e.detector, e.kind, e.severity, e.status, e.subject, e.dedup_key, e.txn_id, e.amount,
       e.summary, e.evidence, e.first_seen, e.last_seen, e.occurrences, e.acknowledged_at, e.acknowledged_by,
       e.resolved_at, e.resolved_by, e.resolution_note
from monitor.events e
where (%(statuses)s::text[] is null or e.status = any (%(statuses)s::text[]))
  and (%(severities)s::text[] is null or e.severity = any (%(severities)s::text[]))
  and (%(detector)s::text is null or e.detector = %(detector)s::text)
  and (%(subject)s::text is null or e.subject = %(subject)s::text)
  and (%(since)s::interval is null or e.last_seen >= now() - %(since)s::interval)
  and (%(since_ts)s::timestamptz is null or e.last_seen >= %(since_ts)s::timestamptz)
order by e.last_seen desc, e.event_id desc
limit %(limit)s

-- name: events_changed
select e.event_id, e.detector, e.kind, e.severity, e.status, e.subject, e.dedup_key, e.txn_id, e.amount,
       e.summary, e.evidence, e.first_seen, e.last_seen, e.occurrences, e.acknowledged_at, e.acknowledged_by,
       e.resolved_at, e.resolved_by, e.resolution_note
from monitor.events e
where (e.status <> 'resolved' or e.resolved_at >= now() - %(window)s::interval)
  and (%(severities)s::text[] is null or e.severity = any (%(severities)s::text[]))
  and (%(detector)s::text is null or e.detector = %(detector)s::text)
  and (%(subject)s::text is null or e.subject = %(subject)s::text)
order by greatest(e.last_seen, e.acknowledged_at, e.resolved_at), e.event_id

-- name: events_changed_since
-- what --follow reads at each look: the events changed after its last look (events_changed_at), and
-- those it was told of by NOTIFY, whenever their transaction committed
select e.event_id, e.detector, e.kind, e.severity, e.status, e.subject, e.dedup_key, e.txn_id, e.amount,
       e.summary, e.evidence, e.first_seen, e.last_seen, e.occurrences, e.acknowledged_at, e.acknowledged_by,
       e.resolved_at, e.resolved_by, e.resolution_note, e.changed_at
from monitor.events e
where (e.changed_at > %(after)s::timestamptz or e.event_id = any (%(ids)s::bigint[]))
  and (%(severities)s::text[] is null or e.severity = any (%(severities)s::text[]))
  and (%(detector)s::text is null or e.detector = %(detector)s::text)
  and (%(subject)s::text is null or e.subject = %(subject)s::text)
order by e.changed_at, e.event_id

-- name: events_fail_on
select e.severity, count(*) from monitor.events e
where e.status <> 'resolved' and e.severity = any (%(severities)s::text[])
  and (%(detector)s::text is null or e.detector = %(detector)s::text)
  and (%(subject)s::text is null or e.subject = %(subject)s::text)
group by e.severity

-- name: detector_known
-- a registered detector, or one whose events remain
select exists (select from monitor.detectors where name = %(name)s)
    or exists (select from monitor.events where detector = %(name)s)

-- name: event_one
select e.event_id, e.detector, e.kind, e.severity, e.status, e.subject, e.dedup_key, e.txn_id, e.amount,
       e.summary, e.evidence, e.first_seen, e.last_seen, e.occurrences, e.acknowledged_at, e.acknowledged_by,
       e.resolved_at, e.resolved_by, e.resolution_note
from monitor.events e where e.event_id = %(id)s

-- name: event_history
select h.history_id, h.event_id, h.created_at, h.transition, h.actor, h.db_user, h.note, h.detector, h.severity,
       h.subject, h.summary
from monitor.alert_history h where h.event_id = %(id)s order by h.created_at, h.history_id

-- name: acknowledge
select monitor.acknowledge(%(ids)s::bigint[], %(actor)s::text)

-- name: resolve
select monitor.resolve(%(ids)s::bigint[], %(note)s::text, %(actor)s::text)

-- name: event_statuses
select event_id, status from monitor.events where event_id = any (%(ids)s::bigint[]) order by event_id

-- name: status_detectors
select d.name, d.enabled, d.scheduled, d.severity, d.kind, d.schedule, d.builtin, d.enabled_at, d.params,
       r.started_at as last_run, r.finished_at - r.started_at as duration, r.status as last_status,
       r.error as last_error, r.events_opened as last_opened, ok.finished_at as last_ok,
       coalesce(o.n, 0) as open_events
from monitor.detectors d
left join (select e.detector, count(*) as n from monitor.events e where e.status <> 'resolved'
            group by e.detector) o on o.detector = d.name  -- one pass over the active events
left join lateral (select * from monitor.detector_runs r where r.detector = d.name and r.status <> 'skipped'
                    order by r.started_at desc, r.run_id desc limit 1) r on true
left join lateral (select r2.finished_at from monitor.detector_runs r2 where r2.detector = d.name
                      and r2.status = 'ok' order by r2.started_at desc, r2.run_id desc limit 1) ok on true
order by d.name

-- name: status_events
select s.severity,
       (select count(*) from monitor.events e where e.severity = s.severity and e.status = 'open') as open,
       (select count(*) from monitor.events e where e.severity = s.severity and e.status = 'acknowledged')
           as acknowledged
from unnest(%(severities)s::text[]) with ordinality as s(severity, n)
order by s.n

-- name: status_misc
select now() as checked_at, current_database() as database, current_user as "user",
       (select value from monitor.settings where key = 'sources.mapping') as mapping

-- name: detectors_list
select d.name, d.enabled, d.severity, d.kind, d.schedule, d.params, d.param_defaults, d.description,
       d.function, d.builtin, d.enabled_at, d.updated_at
from monitor.detectors d order by d.name

-- name: detector_names
select coalesce(string_agg(name, ', ' order by name), '') from monitor.detectors

-- name: configure_detector
select (monitor.configure_detector(%(name)s, %(params)s::jsonb, %(schedule)s::text, %(severity)s::text,
                                   %(enabled)s::boolean)).*

-- name: register_detector
select (monitor.register_detector(%(name)s, %(function)s, %(severity)s, %(kind)s,
                                  %(schedule)s, %(params)s::jsonb, %(description)s)).*

-- name: unregister_detector
select monitor.unregister_detector(%(name)s)

-- name: prune
call monitor.prune(dry_run => %(dry_run)s, events_days => %(events_days)s::integer,
                   history_days => %(history_days)s::integer)

-- name: cron_runs_days
select coalesce((select (value #>> '{}')::integer from monitor.settings where key = 'retention.cron_runs_days'), 30),
       coalesce((select (value #>> '{}')::integer from monitor.settings where key = 'retention.batch_size'), 5000)

-- name: cron_runs_count
select count(*) from cron.job_run_details d join cron.job j on j.jobid = d.jobid
where starts_with(j.jobname, %(prefix)s) and substr(j.jobname, length(%(prefix)s) + 1) ~ '^[a-z][a-z0-9_-]*$'
  and (j.database = %(dbname)s
       or (not %(local)s and j.jobname = %(prefix)s || 'prune-cron' and j.database = %(cron_db)s))
  and d.end_time < now() - make_interval(days => %(days)s)

-- name: cron_runs_prune
delete from cron.job_run_details where runid in (
    select d.runid from cron.job_run_details d join cron.job j on j.jobid = d.jobid
    where starts_with(j.jobname, %(prefix)s) and substr(j.jobname, length(%(prefix)s) + 1) ~ '^[a-z][a-z0-9_-]*$'
      and (j.database = %(dbname)s
           or (not %(local)s and j.jobname = %(prefix)s || 'prune-cron' and j.database = %(cron_db)s))
      and d.end_time < now() - make_interval(days => %(days)s)
    limit %(batch)s)

-- name: run_targets
select name, enabled, kind, monitor.interval_ms(coalesce(params ->> 'timeout', '50 seconds')) as timeout_ms
from monitor.detectors order by name

-- name: last_run
select detector, status, events_opened, events_updated, events_resolved, rows_examined, started_at,
       finished_at, finished_at - started_at as duration, since, error
from monitor.detector_runs where detector = %s order by run_id desc limit 1

-- name: detector_health_now
select h.subject, h.evidence ->> 'problem' as problem, h.summary from monitor.detector_problems() h

-- name: index_columns
-- the leading keys of each full (not partial) index of a relation, in index order, as
-- pg_get_indexdef shows them (a column's name, quoted when it must be, or an expression)
select array(select pg_get_indexdef(i.indexrelid, k.n::integer, true)
               from generate_series(1, i.indnkeyatts) k(n) order by k.n)
from pg_index i where i.indrelid = %s and i.indpred is null

-- name: index_key
-- a mapped column as pg_get_indexdef shows it as an index key (shown), and as CREATE INDEX takes it
-- (written): the expression the source view reads, so that the index serves it. A column read in a
-- time zone is `column AT TIME ZONE zone`; a column of another type than text mapped to a text
-- column (an id of type bigint or uuid) is `column::text`, since the view compares it as text.
select case when %(zone)s::text is not null then format('(%%s AT TIME ZONE %%L::text)', quote_ident(a.attname), %(zone)s::text)
            when %(logical)s = 'text' and a.atttypid not in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
            then format('(%%s::text)', quote_ident(a.attname))
            else quote_ident(a.attname) end as shown,
       case when %(zone)s::text is not null then format('(%%s AT TIME ZONE %%L)', quote_ident(a.attname), %(zone)s::text)
            when %(logical)s = 'text' and a.atttypid not in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
            then format('(%%s::text)', quote_ident(a.attname))
            else quote_ident(a.attname) end as written,
       a.atttypid = 'timestamp'::regtype and %(zone)s::text is null and %(logical)s = 'timestamptz' as zoneless
from pg_attribute a
where a.attrelid = %(relid)s and a.attname = %(name)s and not a.attisdropped

-- name: doctor_probe_pending_created
-- the plan of stuck_pending's filter (doctor)
explain (format json) select 1 from monitor.src_transactions t where t.status = 'pending' and t.created_at < now()

-- name: doctor_probe_failed_created
-- the plan of failed_debit's and consecutive_failures' filter on new rows (doctor)
explain (format json) select 1 from monitor.src_transactions t where t.status = 'failed' and t.created_at >= now()

-- name: doctor_probe_failed_updated
-- the plan of the same filter on changed rows
explain (format json) select 1 from monitor.src_transactions t where t.status = 'failed' and t.updated_at >= now()

-- name: partial_indexes
-- whether one of these indexes (by name, as EXPLAIN shows them) is a partial index
select exists (select from pg_index i join pg_class c on c.oid = i.indexrelid
                where c.relname = any (%s) and i.indpred is not null)

-- name: find_relation
-- a mapped relation by name, from the catalogs: the first of the schemas that holds it; whether it
-- stores its rows here (a table, partitioned table or materialized view: its rows have an xmin)
select c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind in ('r', 'p', 'm'),
       c.relkind::text
from unnest(%(schemas)s::text[]) with ordinality s(nsp, i)
join pg_namespace n on n.nspname = s.nsp
join pg_class c on c.relnamespace = n.oid and c.relname = %(name)s and c.relkind in ('r', 'p', 'v', 'm', 'f')
order by s.i
limit 1

-- name: relation_untrusted
-- why detectors may not read a mapped relation with monitor's owner's rights, or NULL: a view,
-- materialized view or foreign table, or a table with row-level security, owned by a role that is
-- neither a superuser nor monitor's owner (the installer, before the first install) could run its
-- owner's code in the reader's name (sql/015_trust.sql checks everything behind the views too)
select format('%%s %%s is owned by %%s, and detectors read it with monitor''s rights: it must be owned by %%s or a '
              'superuser', case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                          when 'f' then 'foreign table' else 'table with row-level security' end,
              c.oid::regclass, c.relowner::regrole, m.owner::regrole)
from pg_class c
join pg_roles o on o.oid = c.relowner
cross join (select coalesce((select nspowner from pg_namespace where nspname = 'monitor'),
                            (select oid from pg_roles where rolname = current_user)) as owner) m
where c.oid = %s and (c.relkind in ('v', 'm', 'f') or c.relrowsecurity)
  and not o.rolsuper and c.relowner <> m.owner

-- name: relation_columns
-- a relation's columns and their types
select attname::text, format_type(atttypid, atttypmod) from pg_attribute
where attrelid = %s and attnum > 0 and not attisdropped

-- Install, uninstall and scheduling (monitorctl/install.py, monitorctl/schedule.py).

-- name: install_lock_try
select pg_try_advisory_lock(%s, %s)

-- name: install_lock_wait
select pg_advisory_lock(%s, %s)

-- name: install_lock_release
select pg_advisory_unlock(%s, %s)

-- name: monitor_installed
-- whether monitor's migration records exist (NULL: never installed)
select to_regclass('monitor._yoyo_migration') is not null

-- name: has_settings
select to_regclass('monitor.settings') is not null

-- name: has_detectors
select to_regclass('monitor.detectors') is not null

-- name: unavailable_detectors
-- the built-in detectors the mapping gives nothing to read, and why (monitorctl/mapping.py: unavailable)
select value from monitor.settings where key = 'sources.unavailable'

-- name: unavailable_was_enabled
-- whether each of those was enabled when the mapping turned it off (restored when it is fed again)
select value from monitor.settings where key = 'sources.unavailable_was_enabled'

-- name: store_unavailable
insert into monitor.settings (key, value, description)
values ('sources.unavailable', %(why)s, 'the built-in detectors the mapping gives nothing to read, and why'),
       ('sources.unavailable_was_enabled', %(was)s, 'whether each was enabled when the mapping turned it off')
on conflict (key) do update set value = excluded.value

-- name: detector_enabled
select enabled from monitor.detectors where name = %(name)s

-- name: reset_source_caches
-- a new mapping: the caches read through the old one go, and the next runs are full passes
truncate monitor.account_totals, monitor.failure_minutes;
delete from monitor.watermarks where detector = 'balance_mismatch.horizon' or detector like '%%.full';
drop materialized view if exists monitor.volume_hourly

-- name: stored_mapping
select value from monitor.settings where key = 'sources.mapping'

-- name: ledger_exists
select to_regnamespace('ledger') is not null

-- name: create_monitor_schema
create schema if not exists monitor

-- name: drop_monitor_schema
drop schema if exists monitor cascade

-- name: drop_ledger_schema
drop schema if exists ledger cascade

-- name: set_params
select monitor.set_params(%(name)s, %(params)s::jsonb)

-- name: cron_database
select monitor.cron_database()

-- name: cron_schedule
select cron.schedule(%(name)s, %(schedule)s, %(command)s)

-- name: cron_schedule_in_database
select cron.schedule_in_database(%(name)s, %(schedule)s, %(command)s, %(database)s)

-- name: cron_unschedule
select cron.unschedule(%(jobid)s::bigint)

-- name: monitor_owner
select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'monitor'

-- name: planner_no_seqscan
-- for doctor's probes, in a transaction that is rolled back: does an index serve the filter? (a SET
-- LOCAL statement: Citus passes it on to the shards' plans when asked to, citus_set_local)
SET LOCAL enable_seqscan = off

-- name: citus_set_local
-- on a Citus coordinator: SET LOCAL statements of this transaction apply on the workers too
SET LOCAL citus.propagate_set_commands = 'local'

-- Commands (monitorctl/api.py).

-- name: now
select now()

-- name: statement_timeout_local
select set_config('statement_timeout', %(timeout)s, true)

-- name: run_detector
select monitor.run_detector(%(name)s, %(since)s, %(until)s)

-- name: detector_exists
select exists (select from monitor.detectors where name = %(name)s)

-- name: listen_events
listen monitor_events

-- name: festival_settings
select set_config('festival.cards', %(cards)s, false), set_config('festival.hours', %(hours)s, false),
       set_config('festival.seed', %(seed)s, false)

-- Notifications: the delivery worker (monitorctl/notify/worker.py).

-- name: notify_claim
-- due deliveries for one worker, under a lease (sql/075_notifications.sql)
select * from monitor.claim_deliveries(%(worker)s::text, %(limit)s::integer, %(lease)s::interval)

-- name: notify_record
select monitor.record_attempt(%(delivery_id)s::bigint, %(worker)s::text, %(attempt)s::integer, %(ok)s::boolean,
                              %(started)s::timestamptz,
                              %(latency_ms)s::numeric, %(status_code)s::integer, %(reply)s::text, %(retry)s::boolean,
                              %(retry_after)s::interval)

-- name: notify_enqueue_due
select monitor.enqueue_due()

-- name: notify_listen
listen monitor_events

-- Notifications: receivers, routes, silences, deliveries (monitorctl/notify/manage.py).

-- name: receiver_add
select monitor.add_receiver(%(name)s::text, %(type)s::text, %(config)s::jsonb, %(secret_env)s::text, %(secret)s::text)

-- name: receiver_remove
select monitor.remove_receiver(%(name)s::text)

-- name: receivers_list
-- never the secret: whether one is set, and the name of its environment variable; each receiver's
-- backlog (deliveries_backlog) and circuit, for `receivers list`, `status` and /metrics
select r.name, r.type, r.config, r.secret_env,
       case when r.secret_env is not null then 'env ' || r.secret_env
            when monitor.receiver_has_secret(r.name) then 'set (literal)' else 'none' end as secret,
       case when r.open_until > now() then 'open' when r.failures >= 5 then 'half-open' else 'closed' end as circuit,
       r.failures, r.open_until,
       (select count(*) from monitor.deliveries d where d.receiver = r.name and d.status = 'pending') as pending,
       (select count(*) from monitor.deliveries d where d.receiver = r.name and d.status = 'failed') as failed,
       (select count(*) from monitor.deliveries d where d.receiver = r.name and d.status = 'dead') as dead,
       s.last_sent,
       -- given up since the receiver last took one: what still needs someone
       (select count(*) from monitor.deliveries d where d.receiver = r.name and d.status = 'dead'
           and d.created_at > coalesce(s.last_sent, '-infinity')) as dead_unsettled
  from monitor.receivers r
  cross join lateral (select max(d.sent_at) as last_sent from monitor.deliveries d
                       where d.receiver = r.name and d.status = 'sent') s
 where %(name)s::text is null or r.name = %(name)s::text
 order by r.name

-- name: receiver_for_test
-- a receiver as the worker claims it, for `receivers test` (monitor's owner only: the secret)
select r.name as receiver, r.type as receiver_type, r.config as receiver_config, r.secret_env, r.secret
  from monitor.receivers r where r.name = %(name)s::text

-- name: routes_list
select r.route_id, r.position, r.receiver, r.min_severity, r.detectors, r.subject_glob,
       coalesce(r.repeat_every::text, 'default') as repeat, r.send_resolved, r.continue_after,
       r.escalate_after, r.escalate_to
  from monitor.routes r
 order by r.position, r.route_id

-- name: routes_count
select count(*) from monitor.routes

-- name: route_add
select monitor.add_route(%(receiver)s::text, %(min_severity)s::text, %(detectors)s::text[], %(subject)s::text,
                         %(repeat)s::interval, %(send_resolved)s::boolean, %(continue)s::boolean,
                         %(escalate_after)s::interval, %(escalate_to)s::text)

-- name: route_remove
select monitor.remove_route(%(id)s::bigint)

-- name: silences_list
select s.silence_id, s.detector, s.subject_glob, s.starts_at, s.ends_at, s.comment, s.created_by,
       case when s.starts_at > now() then 'coming' when s.ends_at > now() then 'active' else 'ended' end as state
  from monitor.silences s
 where %(all)s::boolean or s.ends_at > now()
 order by s.starts_at, s.silence_id

-- name: silence_add
select monitor.add_silence(%(detector)s::text, %(subject)s::text, %(starts)s::timestamptz, %(ends)s::timestamptz,
                           %(comment)s::text)

-- name: silence_expire
select monitor.expire_silence(%(id)s::bigint)

-- name: deliveries_list
select d.delivery_id, d.event_id, d.detector, d.transition, d.receiver, d.status, d.attempts, d.created_at,
       d.due_at, d.sent_at, d.last_error,
       (select count(*) from monitor.deliveries m where m.digest_id = d.delivery_id) as digest_of
  from monitor.deliveries d
 where (%(status)s::text is null or d.status = %(status)s::text)
   and (%(event)s::bigint is null or d.event_id = %(event)s::bigint
        or d.delivery_id = (select m.digest_id from monitor.deliveries m
                             where m.event_id = %(event)s::bigint and m.digest_id is not null limit 1))
 order by d.delivery_id desc
 limit %(limit)s

-- name: delivery_retry
select monitor.retry_delivery(%(id)s::bigint)

-- name: event_attempts
-- who was told of one event, when, and how each attempt went (monitorctl show)
select d.delivery_id, d.transition, d.receiver, d.status, a.started_at, a.ok, a.status_code, a.latency_ms, a.reply
  from monitor.deliveries d
  left join monitor.delivery_attempts a
         on a.delivery_id = coalesce(case when d.status = 'digested' then d.digest_id end, d.delivery_id)
 where d.event_id = %(id)s::bigint
 order by d.delivery_id, a.attempt_id

-- The server's metrics (monitorctl/observe.py): a few indexed reads, whatever the number of events.

-- name: metrics_active_events
-- active events by severity, detector and status (the partial index of active events)
select e.severity, e.detector, e.status, count(*) as n
  from monitor.events e
 where e.status <> 'resolved'
 group by 1, 2, 3
 order by 1, 2, 3

-- name: metrics_events_opened
-- events opened since install: the events' id sequence (a counter that never goes back)
select coalesce((select last_value from monitor.events_event_id_seq where is_called), 0) as opened

-- name: metrics_events_resolved
-- events resolved since install (a person or the runner), counted where they are resolved
select coalesce((select value from monitor.counters where name = 'events_resolved'), 0)

-- name: metrics_snapshot
select s.taken_at, s.txn_last_hour, s.successes, s.failures, s.success_rate
  from monitor.health_snapshots s order by s.taken_at desc limit 1

-- name: snapshots_since
select s.taken_at, s.txn_last_hour, s.successes, s.failures, s.success_rate, s.open_critical, s.open_high,
       s.open_medium, s.open_low
  from monitor.health_snapshots s where s.taken_at >= now() - %(window)s::interval order by s.taken_at

-- Citus (monitorctl/citus.py, docs/scaling.md).

-- name: citus_version
-- the citus extension's version in this database
select e.extversion from pg_catalog.pg_extension e where e.extname = 'citus'

-- name: citus_node
-- this node's place in its cluster (only asked where the citus extension is installed): whether it is
-- the coordinator (group 0), and how many workers the cluster has
select (select groupid = 0 from pg_catalog.pg_dist_local_group) as coordinator,
       (select count(*) from pg_catalog.pg_dist_node where groupid <> 0 and noderole = 'primary') as workers

-- name: unique_keys_without
-- the unique indexes of a relation that do not include a column (Citus distributes a table only when
-- every unique key includes its distribution column)
select coalesce(string_agg(c.relname::text, ', ' order by c.relname), '')
from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
where i.indrelid = %(relid)s and i.indisunique
  and not exists (select from pg_catalog.pg_attribute a
                   where a.attrelid = i.indrelid and a.attname = %(column)s and a.attnum = any (i.indkey))

-- name: view_reads_xmin
-- whether a source view was made reading its relation's xmin (rendered before the relation was
-- distributed, it still does)
select pg_catalog.pg_get_viewdef(pg_catalog.to_regclass(%s)) ~ '\mxmin\M'

-- name: citus_table
-- how Citus stores a relation (only asked where the citus extension is installed): its kind
-- (distributed, reference, local: a Citus local table on the coordinator), distribution column and
-- co-location group; no row for a plain PostgreSQL table
-- (as Citus's own citus_tables says: a table without a distribution column in a co-location group of
-- its own is a single-shard distributed table, its rows on a worker; only group 0 is a local table)
select case when p.partmethod <> 'n' then 'distributed' when p.repmodel = 't' then 'reference'
            when p.colocationid = 0 then 'local' else 'distributed' end as kind,
       case when p.partmethod <> 'n' then pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) end
           as column,
       p.colocationid as colocation,
       (select count(*) from pg_catalog.pg_dist_shard s where s.logicalrelid = p.logicalrelid) as shards
from pg_catalog.pg_dist_partition p where p.logicalrelid = %s
