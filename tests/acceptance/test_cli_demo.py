"""monitorctl demo (docs/cli.md): a throwaway server, a festival with every kind of incident, detection,
clean-up; and with --keep, the session the documentation shows (events, ack, status) against it."""

import json
import os
import re
import subprocess
import time

from tests.acceptance.support import cli_env, run_cli

EXPECTED = {"failed_debit", "balance_mismatch", "balance_chain", "consecutive_failures", "negative_balance",
            "stuck_pending", "failure_rate", "duplicate_scan", "concurrent_txn", "volume_anomaly"}


def cluster_dir(stderr: str) -> str | None:
    m = re.search(r"throwaway PostgreSQL cluster in (\S+)", stderr)
    return m.group(1) if m else None


def test_demo_finds_every_injected_incident_and_cleans_up():
    started = time.monotonic()
    r = run_cli("demo", "--format", "json", timeout=120)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert elapsed < 60
    doc = json.loads(r.stdout)
    found = {e["detector"] for e in doc["events"]}
    assert found == EXPECTED  # every kind injected, and no noise from ordinary traffic
    assert doc["by_severity"]["critical"] >= 2 and sum(doc["by_severity"].values()) == len(doc["events"])
    assert all(e["status"] == "open" for e in doc["events"]) and doc["dsn"] is None
    assert re.search(r"festival: [\d,]+ cards, [\d,]+ transactions", r.stderr)
    assert "[11/11]" in r.stderr and "demo --keep" in r.stderr
    # the critical events reached the demo's own webhook receiver, signatures verified
    m = re.search(r"notifications: (\d+) critical event\(s\) sent to a local webhook receiver, every signature "
                  r"verified", r.stderr)
    assert m and int(m.group(1)) >= 3, r.stderr
    assert "received: balance_mismatch" in r.stderr or "received: failed_debit" in r.stderr
    where = cluster_dir(r.stderr)
    if where:  # the local backend: the cluster is gone
        assert not os.path.exists(where)


def test_demo_keep_then_the_documented_session():
    r = run_cli("demo", "--keep", "--cards", "500", timeout=120)
    assert r.returncode == 0, r.stderr
    dsn = re.search(r"export MONITOR_DSN='([^']+)'", r.stderr).group(1)
    stop = re.search(r"stop and delete it with:\n\s+(.+)\n", r.stderr)
    try:
        table = r.stdout.splitlines()
        assert table[1].split()[:3] == ["ID", "SEVERITY", "STATUS"]
        assert re.match(r"\d+ events: \d+ critical, \d+ high, \d+ medium, 0 low", table[-1])

        critical = run_cli("events", "--severity", "critical", MONITOR_DSN=dsn)
        assert critical.returncode == 0
        rows = critical.stdout.splitlines()[1:]
        assert rows and all(" critical " in row for row in rows)
        first = rows[0].split()[0]
        assert run_cli("ack", first, MONITOR_DSN=dsn).returncode == 0
        status = run_cli("status", MONITOR_DSN=dsn)
        assert status.returncode == 0 and "database festival" in status.stdout
        assert "acknowledged)" in status.stdout and "pg_cron" in status.stdout
        if "runs the detectors every minute" in r.stderr:  # pg_cron is installed: the jobs are there
            assert "in line with the registry" in status.stdout and "scheduling is off" not in status.stdout
        events = json.loads(run_cli("events", "--format", "json", MONITOR_DSN=dsn).stdout)
        assert next(e for e in events if str(e["event_id"]) == first)["status"] == "acknowledged"
    finally:
        if stop:
            subprocess.run(stop.group(1), shell=True, env=cli_env(), capture_output=True, timeout=60)
    where = cluster_dir(r.stderr)
    if where:
        assert stop and not os.path.exists(where)
