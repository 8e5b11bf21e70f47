-- Named queries the CLI runs (procrastinate style): `-- name: NAME` then the SQL.

-- name: applied_migrations
select migration_id from monitor._yoyo_migration order by applied_at_utc, migration_id

-- name: store_mapping
insert into monitor.settings (key, value, description)
values ('sources.mapping', %s, 'the source mapping install rendered the source views from')
on conflict (key) do update set value = excluded.value

-- name: uninstall_summary
select (select count(*) from monitor.events),
       (select count(*) from monitor.alert_history),
       (select count(*) from monitor.detectors)

-- name: cron_site
select current_setting('cron.database_name', true), current_database(), current_user

-- name: cron_version
select extversion from pg_extension where extname = 'pg_cron'

-- name: enabled_detectors
select name, schedule, monitor.interval_ms(coalesce(params ->> 'timeout', '50 seconds')) from monitor.detectors
where enabled order by name

-- name: cron_jobs
select jobid, jobname, schedule, command, database, active from cron.job
where username = current_user and (
      (%(local)s and jobname ~ '^monitor\.[^.]+$' and database = %(dbname)s)
   or (not %(local)s and starts_with(jobname, %(prefix)s)))
order by jobname

-- name: mark_scheduled
update monitor.detectors set scheduled = (name = any(%s)) where scheduled is distinct from (name = any(%s))
