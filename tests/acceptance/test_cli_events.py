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
