"""monitorctl prune (docs/operations.md): retention in bounded batches; open and acknowledged events are never pruned."""

import psycopg
import pytest

from tests.acceptance.support import dbname

# (dedup key, status, age in days): the event's first/last seen, and resolved_at for resolved ones
EVENTS = [("resolved_31d", "resolved", 31), ("resolved_29d", "resolved", 29), ("open_40d", "open", 40),
          ("acked_40d", "acknowledged", 40), ("open_new", "open", 0)]


def scene(conn):
    for key, status, days in EVENTS:
        conn.execute("""
            insert into monitor.events (detector, kind, severity, status, subject, dedup_key, summary,
                                        first_seen, last_seen, acknowledged_at, resolved_at)
            values ('failed_debit', 'finding', 'critical', %(status)s, 'C-1', %(key)s, %(key)s,
                    now() - make_interval(days => %(days)s), now() - make_interval(days => %(days)s),
                    case when %(status)s <> 'open' then now() - make_interval(days => %(days)s) end,
                    case when %(status)s = 'resolved' then now() - make_interval(days => %(days)s) end)""",
                     {"key": key, "status": status, "days": days})
    # history: 91 days old (of the open event), 89 days old
    for days in (91, 89):
        conn.execute("""insert into monitor.alert_history (event_id, created_at, transition, actor, detector,
                                                           severity, subject, summary)
                        select event_id, now() - make_interval(days => %s), 'opened', 'auto', detector, severity,
                               subject, summary from monitor.events where dedup_key = 'open_40d'""", (days,))
    conn.execute("""insert into monitor.detector_runs (detector, started_at, finished_at, status)
                    values ('failed_debit', now() - interval '31 days', now() - interval '31 days', 'ok'),
                           ('failed_debit', now() - interval '1 day', now() - interval '1 day', 'ok')""")
    conn.execute("""insert into monitor.health_snapshots (taken_at, txn_last_hour, successes, failures,
                                                          open_critical, open_high, open_medium, open_low)
                    values (now() - interval '31 days', 0, 0, 0, 0, 0, 0, 0), (now(), 0, 0, 0, 0, 0, 0, 0)""")


def keys(conn):
    return {r[0] for r in conn.execute("select dedup_key from monitor.events")}


def counts(conn):
    return conn.execute("select (select count(*) from monitor.alert_history), (select count(*) from"
                        " monitor.detector_runs), (select count(*) from monitor.health_snapshots)").fetchone()


def test_dry_run_counts_and_deletes_nothing_then_prune_deletes(monitor):
    scene(monitor.conn)
    doc = monitor.json("prune", "--dry-run")
    assert doc == {"dry_run": True, "would_delete": {"events": 1, "alert_history": 1, "deliveries": 0,
                                                     "health_snapshots": 1, "detector_runs": 1,
                                                     "cron_job_run_details": 0}}
    assert keys(monitor.conn) == {k for k, _, _ in EVENTS} and counts(monitor.conn) == (2, 2, 2)

    r = monitor.ok("prune")
    table = dict(line.split() for line in r.stdout.splitlines()[1:])
    assert table == {"events": "1", "alert_history": "1", "deliveries": "0", "health_snapshots": "1",
                     "detector_runs": "1", "cron_job_run_details": "0"}
    assert "deleted 4 rows" in r.stderr
    # the event resolved 31 days ago is gone; the open and acknowledged ones stay, whatever their age
    assert keys(monitor.conn) == {"resolved_29d", "open_40d", "acked_40d", "open_new"}
    assert counts(monitor.conn) == (1, 1, 1)  # history older than 90 days went, though its event is open


def test_flags_override_the_settings(monitor):
    scene(monitor.conn)
    doc = monitor.json("prune", "--events-days", "10", "--history-days", "60")
    assert doc["deleted"]["events"] == 2 and doc["deleted"]["alert_history"] == 2
    assert keys(monitor.conn) == {"open_40d", "acked_40d", "open_new"}
    monitor.conn.execute("update monitor.settings set value = '5' where key = 'retention.batch_size'")
    monitor.conn.execute("""insert into monitor.events (detector, kind, severity, status, subject, dedup_key,
                                                        summary, resolved_at)
                            select 'x', 'finding', 'low', 'resolved', 's', 'k' || g, 's', now() - interval '2 days'
                              from generate_series(1, 23) g""")
    assert monitor.json("prune", "--events-days", "1")["deleted"]["events"] == 23  # in batches of 5
    assert monitor.cli("prune", "--events-days", "-1").returncode == 2


def test_prunes_this_databases_pg_cron_run_records_in_the_cron_database(monitor, pg_server, cron_cleanup):
    if not pg_server.has_cron:
        pytest.skip("needs pg_cron")
    monitor.ok("install")  # creates the jobs monitor.<db>.* in the cron database
    prefix = f"monitor.{dbname(monitor.dsn)}."
    with psycopg.connect(pg_server.dsn(pg_server.cron_database), autocommit=True) as cron:
        cron.execute("""insert into cron.job_run_details (jobid, database, username, command, status, start_time,
                                                          end_time)
                        select jobid, database, username, command, 'succeeded', now() - make_interval(days => d),
                               now() - make_interval(days => d)
                          from cron.job, unnest(array[31, 45, 1]) d
                         where jobname in (%s, %s)""", (prefix + "failed_debit", prefix + "prune"))
        cron.execute("""insert into cron.job (jobid, schedule, command, nodename, nodeport, database, username,
                                              jobname, active)
                        values (-4242, '* * * * *', 'select 1', '', 0, 'elsewhere', current_user,
                                'monitor.elsewhere.failed_debit', false)""")
        cron.execute("""insert into cron.job_run_details (jobid, database, username, command, status, end_time)
                        values (-4242, 'elsewhere', current_user, 'select 1', 'succeeded',
                                now() - interval '99 days')""")
        try:
            assert monitor.json("prune", "--dry-run")["would_delete"]["cron_job_run_details"] == 4
            assert monitor.json("prune")["deleted"]["cron_job_run_details"] == 4
            rows = cron.execute("""select j.jobname, d.end_time < now() - interval '2 days'
                                     from cron.job_run_details d join cron.job j using (jobid)
                                    where starts_with(j.jobname, %s) or j.jobid = -4242""", (prefix,)).fetchall()
            assert sorted(name for name, old in rows if old) == ["monitor.elsewhere.failed_debit"]  # not ours
            # the recent records are kept (pg_cron may have added runs of other jobs meanwhile)
            assert {name for name, old in rows if not old} >= {prefix + "failed_debit", prefix + "prune"}
        finally:
            cron.execute("delete from cron.job_run_details where jobid = -4242")
            cron.execute("delete from cron.job where jobid = -4242")
