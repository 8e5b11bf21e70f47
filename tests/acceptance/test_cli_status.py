"""monitorctl status (docs/cli.md) and its --health probe mode, through the installed CLI."""

import pytest


def test_status_reports_pg_cron_detectors_events_and_migrations(monitor, pg_server, cron_cleanup):
    if not pg_server.has_cron:
        pytest.skip("needs pg_cron")
    doc = monitor.json("status")
    cron = doc["pg_cron"]
    assert cron["available"] and cron["database"] == pg_server.cron_database and cron["version"]
    assert cron["in_sync"] is False and "failed_debit" in " ".join(cron["missing"])  # installed --no-schedule
    monitor.detector("crit")
    doc = monitor.json("status")
    assert doc["pg_cron"]["in_sync"] is False  # a detector registered in SQL has no job yet
    # installed --no-schedule an hour ago: scheduling starts the overdue clock, nothing is overdue yet
    monitor.conn.execute("update monitor.detectors set enabled_at = now() - interval '1 hour'")
    monitor.ok("install")  # schedules the jobs
    monitor.find("crit", "a")
    monitor.run("crit")
    doc = monitor.json("status")
    # 11 detectors, 3 maintenance jobs and prune-cron (this database is not the cron database)
    assert doc["pg_cron"]["in_sync"] is True and doc["pg_cron"]["jobs"] == 16
    assert doc["schema"]["pending"] == [] and "0001.monitor-schema" in doc["schema"]["applied"]
    crit = next(d for d in doc["detectors"] if d["name"] == "crit")
    assert (crit["enabled"], crit["scheduled"], crit["schedule"], crit["last_status"], crit["open_events"]) == \
        (True, True, "* * * * *", "ok", 1)
    assert crit["last_run"] and crit["duration_seconds"] >= 0 and crit["last_error"] is None
    assert doc["events"]["critical"] == {"open": 1, "acknowledged": 0}
    assert doc["health"] == {"healthy": False, "problems": ["1 critical event(s) open"]}
    text = monitor.ok("status").stdout
    assert f"pg_cron {cron['version']} in database {pg_server.cron_database}" in text
    assert "in line with the registry" in text and "all migrations applied" in text
    row = next(line for line in text.splitlines() if line.startswith("crit "))
    assert "* * * * *" in row and " ok " in row and row.rstrip().endswith("1")


def test_health_fails_on_an_open_critical_event_and_a_failing_detector(monitor):
    assert monitor.ok("status", "--health").stdout == "ok\n"
    monitor.detector("crit")
    monitor.find("crit", "a")
    monitor.run("crit")
    r = monitor.cli("status", "--health")
    assert r.returncode == 1 and r.stdout == "unhealthy: 1 critical event(s) open\n"
    monitor.conn.execute("select monitor.acknowledge(array[%s]::bigint[])", (monitor.event("a")["event_id"],))
    assert monitor.cli("status", "--health").returncode == 0  # someone is on it
    # a detector whose latest run failed (and that is scheduled: detector_health's rule)
    monitor.conn.execute("create or replace function test.detect_crit(params jsonb, since timestamptz)"
                         " returns setof monitor.finding language sql set search_path = pg_catalog, pg_temp"
                         " as $$ select null::monitor.finding from generate_series(1, 1 / 0) $$")
    monitor.conn.execute("select monitor.register_detector('crit', 'test.detect_crit', 'critical', 'finding')")
    monitor.conn.execute("update monitor.detectors set scheduled = true where name = 'crit'")
    monitor.run("crit")
    r = monitor.cli("status", "--health")
    assert r.returncode == 1 and "detector crit failed" in r.stdout and "division by zero" in r.stdout
    assert monitor.json("status")["health"]["healthy"] is False
