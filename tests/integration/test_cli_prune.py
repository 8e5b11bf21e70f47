"""The daily pg_cron job runs the same retention as `monitorctl prune`, with monitor.settings."""

from monitorctl import schedule
from tests.acceptance.test_cli_prune import keys, scene


def test_the_pg_cron_jobs_command_prunes_with_the_settings(conn):
    command = schedule.MAINTENANCE["prune"][1]
    assert command == "CALL monitor.prune()"
    scene(conn)
    conn.execute("update monitor.settings set value = '35' where key = 'retention.events_days'")
    conn.execute(command)  # exactly what pg_cron runs, outside a transaction block
    assert keys(conn) == {"resolved_31d", "resolved_29d", "open_40d", "acked_40d", "open_new"}
    conn.execute("update monitor.settings set value = '30' where key = 'retention.events_days'")
    row = conn.execute(command).fetchone()  # the counts come back as the procedure's INOUT columns
    assert row[:4] == (1, 0, 0, 0)
    assert keys(conn) == {"resolved_29d", "open_40d", "acked_40d", "open_new"}


def test_cron_database_job_prunes_only_this_databases_run_records(pg_server, fresh_db):
    """The monitor.<db>.prune-cron job's own command, run in the cron database, deletes old run
    records of this database's jobs and of no one else's."""
    import psycopg
    from monitorctl.install import install

    install(fresh_db, with_ledger=True)
    db = fresh_db.split("dbname=")[1].split()[0]
    with psycopg.connect(pg_server.dsn(pg_server.cron_database), autocommit=True) as c:
        command = c.execute("select command from cron.job where jobname = %s", (f"monitor.{db}.prune-cron",)).fetchone()[0]
        ours = c.execute("select jobid from cron.job where jobname = %s", (f"monitor.{db}.snapshot",)).fetchone()[0]
        c.execute("select cron.schedule('someone.else', '0 0 1 1 *', 'select 1')")
        theirs = c.execute("select jobid from cron.job where jobname = 'someone.else'").fetchone()[0]
        c.execute("""insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
                                                       start_time, end_time)
                     select j, nextval('cron.runid_seq'), 0, 'x', 'x', 'x', 'succeeded', t, t
                     from unnest(array[%s, %s]::bigint[]) j,
                          unnest(array[now() - interval '31 days', now() - interval '1 day']) t""", (ours, theirs))
        c.execute(command)
        left = c.execute("select jobid, end_time > now() - interval '30 days' from cron.job_run_details"
                         " where jobid in (%s, %s) order by 1, 2", (ours, theirs)).fetchall()
        c.execute("select cron.unschedule('someone.else')")
        c.execute("delete from cron.job_run_details where jobid in (%s, %s)", (ours, theirs))
        for (jobid,) in c.execute("select jobid from cron.job where starts_with(jobname, %s)", (f"monitor.{db}.",)).fetchall():
            c.execute("select cron.unschedule(%s::bigint)", (jobid,))
    assert left == sorted([(ours, True), (theirs, False), (theirs, True)])
