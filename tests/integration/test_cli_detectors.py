"""monitorctl detectors in-process: every kind of refused setting (exit 2, one line, nothing changed)."""

import pytest

from tests.acceptance.support import Monitor


@pytest.fixture
def monitor(db, conn):
    return Monitor(db, conn, in_process=True)


BAD = [
    ("window=5 parsecs", ["window", "5 parsecs"]),
    ("speed=3", ["speed", "window"]),
    ("min_count=two", ["min_count", "number"]),
    ("min_count=-2", ["min_count", "whole number from 2 to 100000"]),
    ("min_count=2.5", ["min_count", "whole number from 2 to 100000"]),
    ("window=-3 seconds", ["window", "interval from 0 to 1 day"]),
    ("severity=urgent", ["critical", "high", "medium", "low"]),
    ("schedule=every minute", ["schedule"]),
    ("window", ["key=value"]),
]


def test_list(monitor):
    rows = monitor.json("detectors", "list")
    assert len(rows) == 11 and {r["name"] for r in rows} >= {"failed_debit", "duplicate_scan", "detector_health"}
    dup = next(r for r in rows if r["name"] == "duplicate_scan")
    assert (dup["enabled"], dup["severity"], dup["kind"], dup["schedule"]) == (True, "medium", "finding", "* * * * *")
    assert dup["params"]["window"] == "5 seconds" and dup["params"]["min_count"] == 2
    line = next(line for line in monitor.ok("detectors", "list").stdout.splitlines() if line.startswith("duplicate"))
    assert "min_count=2" in line and "window=5 seconds" in line


def test_refused_settings(monitor):
    before = monitor.json("detectors", "list")
    for assignment, words in BAD:
        r = monitor.cli("detectors", "set", "duplicate_scan", "min_count=4", assignment)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("monitorctl: "), assignment
        assert all(w in r.stderr for w in words), r.stderr
    r = monitor.cli("detectors", "set", "nope", "window=1 second")
    assert r.returncode == 2 and "unknown detector nope" in r.stderr and "duplicate_scan" in r.stderr
    r = monitor.cli("detectors", "enable", "failed_debit", "nope")
    assert r.returncode == 2 and "nope" in r.stderr
    assert monitor.json("detectors", "list") == before


def test_set_without_pg_cron_jobs_still_changes_the_registry(monitor):
    r = monitor.ok("detectors", "set", "stuck_pending", "age=20 minutes", "timeout=30 seconds")
    assert "stuck_pending: age=20 minutes timeout=30 seconds" in r.stderr
    params = monitor.conn.execute("select params from monitor.detectors where name = 'stuck_pending'").fetchone()[0]
    assert params["age"] == "20 minutes" and params["timeout"] == "30 seconds"
    line = next(ln for ln in monitor.ok("detectors", "list").stdout.splitlines() if ln.startswith("stuck_pending"))
    assert "age=20 minutes" in line and "timeout=30 seconds" in line  # a changed common parameter is shown
    assert "late_window" not in line  # an unchanged one is not
    monitor.ok("detectors", "disable", "stuck_pending")
    enabled_at = monitor.conn.execute("select enabled_at from monitor.detectors where name = 'stuck_pending'")
    before = enabled_at.fetchone()[0]
    monitor.ok("detectors", "enable", "stuck_pending")
    after = monitor.conn.execute("select enabled, enabled_at from monitor.detectors"
                                 " where name = 'stuck_pending'").fetchone()
    assert after[0] is True and after[1] > before  # overdue is counted from the re-enabling
    rows = monitor.ok("detectors", "list", "--format", "csv").stdout.splitlines()
    assert rows[0].startswith("name,enabled,severity,kind,schedule,params") and len(rows) == 12


def test_refused_custom_detectors(monitor):
    r = monitor.cli("detectors", "add", "bad", "--function", "test.nope", "--severity", "high", "--kind", "finding")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    r = monitor.cli("detectors", "add", "bad", "--function", "test.nope", "--severity", "urgent",
                    "--kind", "finding")
    assert r.returncode == 2 and "critical" in r.stderr
    r = monitor.cli("detectors", "add", "Bad-Name", "--function", "test.nope", "--severity", "low",
                    "--kind", "condition")
    assert r.returncode == 2
    r = monitor.cli("detectors", "remove", "failed_debit")
    assert r.returncode == 2 and "built in" in r.stderr
    r = monitor.cli("detectors", "remove", "nope")
    assert r.returncode == 2 and "unknown detector" in r.stderr
    assert len(monitor.json("detectors", "list")) == 11
