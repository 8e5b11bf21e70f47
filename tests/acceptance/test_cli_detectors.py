"""monitorctl detectors list|enable|disable|set|add|remove (docs/detectors.md, docs/cli.md): changes reach pg_cron at
once and survive a re-install."""

import pytest

from tests.acceptance.support import cron_jobs


@pytest.fixture
def scheduled(monitor, pg_server, cron_cleanup):
    if not pg_server.has_cron:
        pytest.skip("needs pg_cron")
    monitor.ok("install")
    return monitor


def params(monitor, name):
    return monitor.conn.execute("select params from monitor.detectors where name = %s", (name,)).fetchone()[0]


def test_set_disable_enable_take_effect_in_pg_cron_and_survive_reinstall(scheduled, pg_server):
    m = scheduled
    assert cron_jobs(pg_server, m.dsn)["duplicate_scan"][0] == "* * * * *"
    r = m.ok("detectors", "set", "duplicate_scan", "window=3 seconds", "min_count=3", "schedule=*/2 * * * *",
             "severity=high")
    assert "rescheduled" in r.stderr
    assert params(m, "duplicate_scan")["window"] == "3 seconds" and params(m, "duplicate_scan")["min_count"] == 3
    assert cron_jobs(pg_server, m.dsn)["duplicate_scan"][0] == "*/2 * * * *"
    m.ok("detectors", "set", "failure_rate", "threshold=0.1")
    assert params(m, "failure_rate")["threshold"] == 0.1  # a JSON number
    m.ok("detectors", "disable", "failure_rate", "stuck_pending")
    jobs = cron_jobs(pg_server, m.dsn)
    assert "failure_rate" not in jobs and "stuck_pending" not in jobs and "failed_debit" in jobs
    m.ok("detectors", "enable", "stuck_pending")
    assert "stuck_pending" in cron_jobs(pg_server, m.dsn)

    m.ok("install")  # a re-install keeps every change
    rows = {r["name"]: r for r in m.json("detectors", "list")}
    dup = rows["duplicate_scan"]
    assert (dup["schedule"], dup["severity"], dup["params"]["window"], dup["params"]["min_count"]) == \
        ("*/2 * * * *", "high", "3 seconds", 3)
    assert rows["failure_rate"]["enabled"] is False and rows["failure_rate"]["params"]["threshold"] == 0.1
    jobs = cron_jobs(pg_server, m.dsn)
    assert "failure_rate" not in jobs and jobs["duplicate_scan"][0] == "*/2 * * * *"
    assert m.json("status")["pg_cron"]["in_sync"] is True


def test_a_bad_value_or_an_unknown_key_exits_2_with_one_line_and_changes_nothing(monitor):
    before = monitor.json("detectors", "list")
    for assignment, words in (("window=5 parsecs", ["window", "5 parsecs"]), ("speed=3", ["speed", "window"])):
        r = monitor.cli("detectors", "set", "duplicate_scan", "min_count=4", assignment)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("monitorctl: ")
        assert all(w in r.stderr for w in words), r.stderr
    assert monitor.json("detectors", "list") == before


def test_add_and_remove_a_custom_detector(scheduled, pg_server):
    m = scheduled
    m.conn.execute("""create function test.detect_big(params jsonb, since timestamptz)
                      returns setof monitor.finding language sql set search_path = pg_catalog, pg_temp as $$
                      select 'C-1', 'k1', null, (params ->> 'limit')::numeric, 'big one', '{}'::jsonb $$""")
    r = m.ok("detectors", "add", "big", "--function", "test.detect_big", "--severity", "high", "--kind", "finding",
             "--schedule", "*/5 * * * *", "--param", "limit=500")
    assert "scheduled" in r.stderr
    big = next(r for r in m.json("detectors", "list") if r["name"] == "big")
    assert (big["severity"], big["kind"], big["schedule"], big["params"]["limit"]) == \
        ("high", "finding", "*/5 * * * *", 500)
    assert cron_jobs(pg_server, m.dsn)["big"][0] == "*/5 * * * *"
    m.run("big")
    assert m.event("k1")["amount"] == 500 and m.event("k1")["severity"] == "high"
    m.ok("detectors", "remove", "big")
    assert "big" not in cron_jobs(pg_server, m.dsn)
