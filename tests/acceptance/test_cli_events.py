"""monitorctl events and show (docs/operations.md, docs/cli.md), through the installed CLI as a subprocess.

The filter matrix and the finer points are in tests/integration/test_cli_events.py (in-process).
"""

import csv
import io
import json
import re
import select
import signal
import time

import pytest

from tests.acceptance.support import popen_cli

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def scene(monitor):
    """Events of three severities: x1 (critical, money), x2 (critical), h1 (high), m1 (medium, 3 hours old)."""
    monitor.detector("crit", "critical")
    monitor.detector("hi", "high")
    monitor.detector("med", "medium", kind="condition")
    monitor.find("crit", "x1", subject="C-001", amount="1234.5", evidence={"txn": "T1", "lost": 1234.5})
    monitor.find("crit", "x2", subject="C-002", amount="-7.25")
    monitor.find("hi", "h1", subject="C-001")
    monitor.find("med", "m1", subject="system")
    for name in ("med", "hi", "crit"):
        monitor.run(name)
    monitor.conn.execute("update monitor.events set last_seen = now() - interval '3 hours',"
                         " first_seen = now() - interval '3 hours' where dedup_key = 'm1'")


def test_events_in_json_table_and_csv(monitor):
    scene(monitor)
    events = monitor.json("events")  # one JSON document
    assert [e["dedup_key"] for e in events] == ["x2", "x1", "h1", "m1"]  # newest last_seen first
    x1 = events[1]
    assert set(x1) >= {"event_id", "detector", "severity", "status", "subject", "dedup_key", "txn_id", "amount",
                       "summary", "evidence", "first_seen", "last_seen", "occurrences", "acknowledged_at",
                       "acknowledged_by", "resolved_at", "resolved_by", "resolution_note"}
    assert x1["amount"] == "1234.5" and x1["evidence"] == {"txn": "T1", "lost": 1234.5}
    assert ISO.match(x1["first_seen"]) and ISO.match(x1["last_seen"])
    assert (x1["status"], x1["occurrences"], x1["resolved_at"]) == ("open", 1, None)

    table = monitor.ok("events").stdout.splitlines()
    header = table[0]
    assert header.split()[:5] == ["ID", "SEVERITY", "STATUS", "DETECTOR", "SUBJECT"]
    assert "\x1b[" not in "\n".join(table)  # no colour when stdout is not a terminal
    row = next(line for line in table if "crit on x1" in line)
    assert row.index("1,234.50") + len("1,234.50") == header.index("AMOUNT") + len("AMOUNT")  # right-aligned
    assert "3h ago" in next(line for line in table if "med on m1" in line)
    assert len({line.index("critical") for line in table if "critical" in line}) == 1  # one column

    rows = list(csv.DictReader(io.StringIO(monitor.ok("events", "--format", "csv").stdout)))
    assert [r["dedup_key"] for r in rows] == ["x2", "x1", "h1", "m1"]
    assert rows[1]["amount"] == "1234.5" and json.loads(rows[1]["evidence"])["txn"] == "T1"


def test_filters_and_fail_on(monitor):
    scene(monitor)
    r = monitor.cli("events", "--severity", "critical", "--severity", "high", "--subject", "C-001",
                    "--since", "2h", "--limit", "5", "--format", "json", "--fail-on", "high")
    assert r.returncode == 1, r.stderr  # an active high-or-worse event exists
    assert [e["dedup_key"] for e in json.loads(r.stdout)] == ["x1", "h1"]
    assert r.stderr.count("\n") == 1 and "1 critical, 1 high" in r.stderr  # --subject narrows it
    r = monitor.cli("events", "--detector", "med", "--status", "open", "--format", "json", "--fail-on", "high")
    assert r.returncode == 0 and [e["dedup_key"] for e in json.loads(r.stdout)] == ["m1"]


def test_unknown_severity_exits_2_naming_the_valid_ones(monitor):
    r = monitor.cli("events", "--severity", "urgent")
    assert r.returncode == 2 and r.stdout == ""
    assert "urgent" in r.stderr and all(s in r.stderr for s in ("critical", "high", "medium", "low"))


def test_show_prints_summary_evidence_and_timeline(monitor):
    scene(monitor)
    eid = monitor.event("x1")["event_id"]
    monitor.ok("ack", str(eid), "--as", "alice")
    monitor.ok("resolve", str(eid), "--note", "refunded the card")
    out = monitor.ok("show", str(eid)).stdout
    assert "crit on x1" in out and "1,234.50" in out and "C-001" in out
    evidence = out[out.index("Evidence:"):out.index("Timeline:")]
    assert '"lost": 1234.5' in evidence and '"txn": "T1"' in evidence  # pretty-printed
    timeline = out[out.index("Timeline:"):].splitlines()[1:]
    assert [line.split()[2] for line in timeline] == ["opened", "acknowledged", "resolved"]
    assert "alice" in timeline[1] and "refunded the card" in timeline[2]


def _read_line(proc, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "monitorctl events --follow printed nothing in time"
    return proc.stdout.readline()


def test_follow_prints_an_event_opened_while_it_runs(monitor):
    monitor.detector("crit", "critical")
    monitor.find("crit", "before")
    monitor.run("crit")
    # a long poll interval: the runner's NOTIFY monitor_events is what wakes it up
    proc = popen_cli("events", "--follow", "--format", "json", "--interval", "30", dsn=monitor.dsn)
    try:
        first = json.loads(_read_line(proc, 15))
        assert first["dedup_key"] == "before" and first["change"] == "existing"
        # it LISTENs before printing the listing, so from here on the runner's NOTIFY reaches it
        monitor.find("crit", "during", amount="12.5")
        started = time.monotonic()
        monitor.run("crit")
        opened = json.loads(_read_line(proc, 10))
        assert (opened["dedup_key"], opened["change"], opened["amount"]) == ("during", "opened", "12.5")
        assert time.monotonic() - started < 5
        monitor.conn.execute("select monitor.acknowledge(array[%s]::bigint[])", (opened["event_id"],))
        acked = json.loads(_read_line(proc, 10))
        assert (acked["event_id"], acked["status"], acked["change"]) == (opened["event_id"], "acknowledged",
                                                                         "acknowledged")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err and out == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_listing_every_event_streams_in_flat_memory(monitor, tmp_path, fmt):
    """100,000 events (failed_debit-sized evidence) through a server-side cursor: the CLI's peak memory
    stays far below what holding them would take (the JSON alone is about 90 MB)."""
    import os
    import subprocess

    from tests.acceptance.support import MONITORCTL, cli_env
    monitor.conn.execute("""
        insert into monitor.events (detector, kind, severity, subject, dedup_key, txn_id, amount, summary, evidence)
        select 'failed_debit', 'finding', 'critical', 'C-' || g, 'T' || g, 'T' || g, g % 100,
               format('failed transaction T%s on C-%s still took %s (balance 200 -> %s)', g, g, g % 100, 200 - g % 100),
               jsonb_build_object('txn_id', 'T' || g, 'account_id', 'C-' || g, 'status', 'failed', 'amount', -(g % 100),
                                  'balance_before', 200, 'balance_after', 200 - g % 100, 'lost', g % 100,
                                  'device_id', 'D-' || (g % 50), 'created_at', now(), 'updated_at', null,
                                  'note', repeat('x', 400))
          from generate_series(1, 100000) g""")
    out = tmp_path / f"events.{fmt}"
    with open(out, "w") as stdout:
        proc = subprocess.Popen([*MONITORCTL, "--dsn", monitor.dsn, "events", "--status", "all", "--limit", "0",
                                 "--format", fmt], stdout=stdout, stderr=subprocess.PIPE, env=cli_env(),
                                stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()
    assert fmt == "table" or out.stat().st_size > 50_000_000  # the evidence is in json and csv
    lines = sum(1 for _ in open(out))
    assert lines >= 100_001
    assert usage.ru_maxrss < 100 * 1024, f"peak RSS {usage.ru_maxrss // 1024} MB"


def _cpu_seconds(pid: int) -> float:
    import os
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_follow_costs_next_to_nothing_while_idle_and_still_sees_a_change_without_notify(monitor):
    """100,000 open events: an idle follow reads only what changed since its last look."""
    monitor.conn.execute("""
        insert into monitor.events (detector, kind, severity, subject, dedup_key, summary, changed_at)
        select 'negative_balance', 'condition', 'high', 'C-' || g, 'C-' || g, 'account C-' || g || ' is negative',
               now() - interval '1 hour'
          from generate_series(1, 100000) g""")
    proc = popen_cli("events", "--follow", "--format", "json", "--interval", "0.2", "--limit", "1", dsn=monitor.dsn)
    try:
        assert json.loads(_read_line(proc, 30))["change"] == "existing"
        time.sleep(1)
        cpu, wall = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(4)
        share = (_cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall)
        assert share < 0.05, f"an idle follow used {share:.0%} of a core"
        # a change whose notification never came (a pooler that swallows them): found by the next look
        monitor.conn.execute("update monitor.events set severity = 'critical', changed_at = clock_timestamp()"
                             " where dedup_key = 'C-77'")
        changed = json.loads(_read_line(proc, 5))
        assert (changed["dedup_key"], changed["change"]) == ("C-77", "severity_changed")
    finally:
        proc.kill()
        proc.communicate()
