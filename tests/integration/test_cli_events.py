"""monitorctl events / show in-process (Typer's CliRunner): the filter matrix and the finer points.

tests/acceptance/test_cli_events.py runs the installed CLI as a subprocess for the main paths.
"""

import json

import pytest

from tests.acceptance.support import Monitor
from tests.acceptance.test_cli_events import scene


@pytest.fixture
def monitor(db, conn):
    return Monitor(db, conn, in_process=True)


def keys(monitor, *args):
    return [e["dedup_key"] for e in monitor.json("events", *args)]


def test_every_filter(monitor):
    scene(monitor)
    assert keys(monitor, "--severity", "critical") == ["x2", "x1"]
    assert keys(monitor, "-s", "CRITICAL", "-s", "medium") == ["x2", "x1", "m1"]
    assert keys(monitor, "--detector", "hi") == ["h1"]
    assert keys(monitor, "--subject", "C-001") == ["x1", "h1"]
    assert keys(monitor, "--since", "2h") == ["x2", "x1", "h1"]
    assert keys(monitor, "--since", "30m") == ["x2", "x1", "h1"]
    assert keys(monitor, "--since", "7d") == ["x2", "x1", "h1", "m1"]
    assert keys(monitor, "--since", "90 minutes") == ["x2", "x1", "h1"]
    since = monitor.conn.execute("select (now() - interval '1 hour')::text").fetchone()[0]
    assert keys(monitor, "--since", since.replace(" ", "T")) == ["x2", "x1", "h1"]  # an ISO 8601 time
    assert keys(monitor, "--limit", "2") == ["x2", "x1"]
    assert keys(monitor, "--limit", "0") == ["x2", "x1", "h1", "m1"]
    monitor.ok("ack", str(monitor.event("x1")["event_id"]))
    monitor.ok("resolve", str(monitor.event("x2")["event_id"]))
    assert keys(monitor) == ["x1", "h1", "m1"]  # default: active = open + acknowledged
    assert keys(monitor, "--status", "active") == ["x1", "h1", "m1"]
    assert keys(monitor, "--status", "open") == ["h1", "m1"]
    assert keys(monitor, "--status", "acknowledged") == ["x1"]
    assert keys(monitor, "--status", "resolved") == ["x2"]
    assert keys(monitor, "--status", "all") == ["x2", "x1", "h1", "m1"]


def test_limit_note_and_empty_listing(monitor):
    r = monitor.ok("events")
    assert r.stdout == "" and "no events match" in r.stderr
    assert json.loads(monitor.ok("events", "--format", "json").stdout) == []
    assert monitor.ok("events", "--format", "csv").stdout.startswith("event_id,detector,")
    scene(monitor)
    r = monitor.ok("events", "--limit", "2")
    assert len(r.stdout.splitlines()) == 3 and "--limit 0" in r.stderr


@pytest.mark.parametrize("args, names", [
    (["--status", "closed"], ["open", "acknowledged", "resolved", "active", "all"]),
    (["--fail-on", "severe"], ["critical", "high", "medium", "low"]),
    (["--format", "yaml"], ["table", "json", "csv"]),
    (["--limit", "-1"], ["--limit", "greater than or equal to 0"]),
])
def test_bad_option_values_exit_2_naming_the_valid_ones(monitor, args, names):
    r = monitor.cli("events", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert all(n in r.stderr for n in names), r.stderr


@pytest.mark.parametrize("args, words", [
    (["--since", "2 fortnights"], ["30m", "2h", "7d"]),
    (["--follow", "--fail-on", "high"], ["--fail-on", "--follow"]),
    (["--detector", "nope"], ["nope", "crit"]),
])
def test_bad_values_are_one_line(monitor, args, words):
    monitor.detector("crit")
    r = monitor.cli("events", *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("monitorctl: ")
    assert all(w in r.stderr for w in words), r.stderr


def test_fail_on_counts_active_events_of_that_severity_or_worse(monitor):
    monitor.detector("hi", "high")
    monitor.detector("other", "critical")
    monitor.find("hi", "h1")
    assert monitor.cli("events", "--fail-on", "low").returncode == 0  # nothing yet
    monitor.run("hi")
    assert monitor.cli("events", "--fail-on", "critical").returncode == 0
    for severity in ("high", "medium", "low"):
        r = monitor.cli("events", "--fail-on", severity)
        assert r.returncode == 1 and "hi on h1" in r.stdout  # the listing is still printed
    # --detector / --subject narrow what it counts; the listing's own filters do not
    assert monitor.cli("events", "--fail-on", "low", "--detector", "other").returncode == 0
    assert monitor.cli("events", "--fail-on", "low", "--subject", "C-h1").returncode == 1
    assert monitor.cli("events", "--fail-on", "low", "--severity", "critical").returncode == 1
    assert monitor.cli("events", MONITOR_FAIL_ON="high").returncode == 1  # the environment variable
    eid = str(monitor.event("h1")["event_id"])
    monitor.ok("ack", eid)
    assert monitor.cli("events", "--fail-on", "high").returncode == 1  # acknowledged is still active
    monitor.ok("resolve", eid)
    assert monitor.cli("events", "--fail-on", "low").returncode == 0


def test_show_in_json_csv_and_of_a_pruned_event(monitor):
    scene(monitor)
    eid = monitor.event("x1")["event_id"]
    monitor.ok("resolve", str(eid), "--note", "refunded")
    doc = monitor.json("show", str(eid))
    assert doc["event"]["event_id"] == eid and doc["event"]["amount"] == "1234.5"
    assert [(h["transition"], h["note"]) for h in doc["history"]] == [("opened", None), ("resolved", "refunded")]
    lines = monitor.ok("show", str(eid), "--format", "csv").stdout.splitlines()
    assert lines[0].startswith("history_id,event_id,created_at,transition") and len(lines) == 3
    monitor.conn.execute("delete from monitor.events where event_id = %s", (eid,))  # as prune would
    out = monitor.ok("show", str(eid)).stdout
    assert "was pruned" in out and "resolved" in out
    assert monitor.json("show", str(eid))["event"] is None
    r = monitor.cli("show", "999999")
    assert r.returncode == 1 and r.stderr == "monitorctl: event 999999 does not exist\n"
    assert monitor.cli("show", "abc").returncode == 2


def test_follow_framing_in_csv_and_table(monitor):
    """The stream itself is the acceptance test's; here, how csv and table frame streamed rows."""
    import contextlib
    import io

    from monitorctl.commands.events import Format, _Printer

    scene(monitor)
    row = monitor.conn.execute("select * from monitor.events where dedup_key = 'x1'").fetchone()
    cols = [d.name for d in monitor.conn.execute("select * from monitor.events limit 0").description]
    event = dict(zip(cols, row))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        p = _Printer(Format.csv)
        p.row(event, "existing")
        p.row(event, "acknowledged")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("change,event_id,") and lines[1].startswith("existing,") and len(lines) == 3
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        p = _Printer(Format.table)
        p.row(event, "opened")
    header, line = buf.getvalue().splitlines()
    assert header.split()[:3] == ["CHANGE", "ID", "SEVERITY"] and "opened" in line and "1,234.50" in line
