"""monitorctl.api, used from Python as the worker and the server will: real results, real errors."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import psycopg
import pytest

from monitorctl import model
from monitorctl.api import Monitor
from monitorctl.errors import DatabaseUnavailable, MonitorError, UnknownDetector, UsageError
from tests.acceptance.support import Monitor as Scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scene(db, conn):
    s = Scene(db, conn)
    s.detector("crit", "critical")
    s.detector("warn", "medium", kind="condition")
    return s


@pytest.fixture
def api(db):
    with Monitor(db) as monitor:
        yield monitor


def test_run_opens_events_and_reports_each_detector(scene, api):
    scene.find("crit", "k1", amount=12)
    scene.find("crit", "k2")
    scene.find("warn", "w1")
    seen = []
    results = api.run(["crit", "warn"], progress=lambda at: seen.append((at.detector, at.number, at.of)))
    assert [(r["detector"], r["status"], r["events_opened"]) for r in results] == [("crit", "ok", 2), ("warn", "ok", 1)]
    assert seen == [("crit", 1, 2), ("warn", 2, 2)]
    assert api.run(["crit"])[0]["events_opened"] == 0  # run again: nothing twice


def test_a_backfill_runs_in_slices(scene, api):
    scene.find("crit", "k1")
    slices = []
    result = api.run(["crit"], since=dt.timedelta(days=3), slice=dt.timedelta(days=1),
                     progress=lambda at: slices.append(at.slice))
    assert slices == [1, 2, 3] and result[0]["slices"] == 3 and result[0]["events_opened"] == 1
    with pytest.raises(UsageError, match="--slice"):
        api.run(["crit"], since=dt.timedelta(days=1), slice=dt.timedelta(seconds=30))


def test_events_stream_filter_and_close_their_transaction(scene, api):
    for key in ("a", "b", "c"):
        scene.find("crit", key)
    scene.find("warn", "w")
    api.run()
    with api.events() as rows:
        got = [r["dedup_key"] for r in rows]
    assert sorted(got) == ["a", "b", "c", "w"]
    assert api.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert [r["dedup_key"] for r in api.events(severities=["medium"])] == ["w"]
    assert len(list(api.events(detector="crit", limit=2))) == 2
    rows = api.events()
    next(rows)
    rows.close()  # stopped early: the transaction ends with it
    assert api.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert list(api.events(since=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))) == []


def test_acknowledge_resolve_and_show(scene, api):
    scene.find("crit", "a")
    scene.find("crit", "b")
    api.run(["crit"])
    a, b = scene.event("a")["event_id"], scene.event("b")["event_id"]
    assert api.acknowledge([a], actor="alice").changed == 1
    t = api.acknowledge([a, b], actor="alice")
    assert (t.changed, t.already_acknowledged) == (1, 1)
    assert api.resolve([a], note="refunded", actor="bob").changed == 1
    event, history = api.event(a)
    assert event["status"] == "resolved" and event["resolution_note"] == "refunded"
    assert [h["transition"] for h in history] == ["opened", "acknowledged", "resolved"]
    assert [r["event_id"] for r in api.events(status="resolved")] == [a]
    with pytest.raises(MonitorError, match="nothing was changed"):
        api.resolve([a, b])  # a is resolved already: all or nothing
    assert scene.event("b")["status"] == "acknowledged"
    with pytest.raises(MonitorError, match="event 999999 does not exist"):
        api.event(999999)


def test_fail_on_counts_active_events_of_a_severity_or_worse(scene, api):
    scene.find("warn", "w")
    api.run(["warn"])
    assert api.active_counts("low") == {"medium": 1}
    assert api.active_counts("high") == {}
    with pytest.raises(MonitorError, match="active events of severity low or worse: 1 medium"):
        api.fail_on("low")
    api.fail_on("critical")
    with pytest.raises(UsageError, match="severity must be one of critical, high, medium, low"):
        api.fail_on("urgent")


def test_one_unknown_detector_check_and_wording(scene, api):
    expected = re.escape("unknown detector nope (known: ") + ".*crit.*"
    for call in (lambda: api.run(["nope"]), lambda: list(api.events(detector="nope")),
                 lambda: api.enable(["nope"]), lambda: api.configure("nope", {"window": "1 second"}),
                 lambda: api.remove("nope"), lambda: api.require_detector("nope")):
        with pytest.raises(UnknownDetector, match=expected) as exc:
            call()
        assert exc.value.exit_code == 2
    api.require_detector("crit")


def test_detectors_are_listed_and_configured(scene, api):
    names = {d["name"]: d for d in api.detectors()}
    assert {"failed_debit", "crit", "warn"} <= set(names)
    change = api.configure("duplicate_scan", {"min_count": 5}, schedule="*/5 * * * *", severity="high")
    row = change.detectors[0]
    assert (row["params"]["min_count"], row["schedule"], row["severity"]) == (5, "*/5 * * * *", "high")
    with pytest.raises(UsageError, match="severity must be one of"):
        api.configure("duplicate_scan", severity="urgent")
    with pytest.raises(UsageError, match="speed"):
        api.configure("duplicate_scan", {"min_count": 6, "speed": 3})
    assert {d["name"]: d for d in api.detectors()}["duplicate_scan"]["params"]["min_count"] == 5  # unchanged
    api.disable(["crit"])
    assert not {d["name"]: d for d in api.detectors()}["crit"]["enabled"]
    assert [r["detector"] for r in api.run()] and "crit" not in [r["detector"] for r in api.run()]
    api.enable(["crit"])
    api.remove("crit")
    assert "crit" not in {d["name"] for d in api.detectors()}


def test_status_prune_doctor_and_migrations(scene, api):
    scene.find("crit", "a")
    api.run(["crit"])
    doc = api.status()
    assert doc["events"]["critical"]["open"] == 1 and not doc["health"]["healthy"]
    assert list(doc["events"]) == list(model.SEVERITIES)
    assert {d["name"] for d in doc["detectors"]} >= {"crit", "failed_debit"}
    event_id = scene.event("a")["event_id"]
    api.resolve([event_id])
    scene.conn.execute("update monitor.events set resolved_at = now() - interval '40 days' where event_id = %s",
                       (event_id,))
    assert api.prune(dry_run=True).counts["events"] == 1
    result = api.prune()
    assert result.counts["events"] == 1 and set(result.counts) >= {"events", "cron_job_run_details"}
    assert list(api.events(status="all")) == []
    assert {a["status"] for a in api.doctor()} <= {"ok", "missing", "expression", "unknown"}
    assert all(m["applied"] for m in api.migrations() if m["set"] == "monitor")


def test_follow_yields_existing_then_changes(scene, api):
    scene.find("crit", "before")
    api.run(["crit"])
    ready = threading.Event()
    changes = api.follow(interval=0.2, on_ready=ready.set)
    assert next(changes)[0] == "existing"
    scene.find("crit", "after")
    scene.run("crit")
    change, row = next(changes)
    assert (change, row["dedup_key"]) == ("opened", "after") and ready.is_set()
    changes.close()


def test_install_and_uninstall_from_python(fresh_db):
    with Monitor(fresh_db) as monitor:
        with pytest.raises(DatabaseUnavailable, match="not installed"):
            monitor.detectors()
        report = monitor.install(with_ledger=True, schedule_jobs=False)
        assert report.applied and report.scheduling is None
        assert monitor.detectors()
        assert monitor.uninstall_summary()["detectors"] >= 10
        monitor.uninstall()
        with pytest.raises(DatabaseUnavailable, match="not installed"):
            monitor.status()


def test_a_wrong_dsn_fails_on_connect():
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        Monitor.connect("host=/nonexistent dbname=x")


def test_the_severities_are_the_databases(conn):
    checks = [r[0] for r in conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid in "
        "('monitor.detectors'::regclass, 'monitor.events'::regclass) and pg_get_constraintdef(oid) like '%severity%'")]
    assert checks
    for check in checks:
        assert re.findall(r"'(\w+)'", check) == list(model.SEVERITIES)


def test_the_seconds_schedule_is_one_pattern(conn):
    """Python asks monitor.schedule_seconds (sql/050_registry.sql) instead of keeping a pattern."""
    for text, seconds in [("30 seconds", 30), (" 1 second ", 1), ("59 seconds", 59), ("60 seconds", None),
                          ("0 seconds", None), ("* * * * *", None), ("5\nseconds", None)]:
        assert conn.execute("select monitor.schedule_seconds(%s)", (text,)).fetchone()[0] == seconds, text
        valid = conn.execute("select monitor.valid_schedule(%s)", (text,)).fetchone()[0]
        assert valid == (seconds is not None or text == "* * * * *"), text
    assert not re.search(r"seconds\?", (ROOT / "monitorctl" / "schedule.py").read_text())


def test_commands_run_no_sql_of_their_own():
    """Every command goes through monitorctl.api: no connection, no statement in monitorctl/commands."""
    for path in (ROOT / "monitorctl" / "commands").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"psycopg\.connect|\.execute\(|\bquery\(", text), path.name


def test_the_severity_list_is_written_once():
    pattern = re.compile(r"critical['\"]?,\s*['\"]?high['\"]?,\s*['\"]?medium")
    found = [p.relative_to(ROOT).as_posix() for p in (ROOT / "monitorctl").rglob("*.py")
             if pattern.search(p.read_text())]
    assert found == ["monitorctl/model.py"]


# -- notifications ------------------------------------------------------------------------------------

def test_notifications_from_python_route_send_and_report(scene, api, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    api.add_receiver("hook", "webhook", url=httpserver.url_for("/hook"), secret="whsec_" + "QUJDREVGR0g=")
    route_id = api.add_route("hook", min_severity="high", detectors=["crit"], repeat=dt.timedelta(0))
    assert [(r["route_id"], r["receiver"], r["detectors"], r["repeat"]) for r in api.routes()] == [
        (route_id, "hook", ["crit"], "00:00:00")]
    scene.find("crit", "k1", amount=12)
    scene.find("warn", "w1")                       # medium: below the route's severity
    api.run(["crit", "warn"])
    counts = api.notify(once=True)
    assert counts == {"sent": 1, "failed": 0, "dead": 0}
    [d] = api.deliveries()
    assert (d["transition"], d["status"], d["receiver"]) == ("opened", "sent", "hook")
    [a] = api.event_attempts(d["event_id"])
    assert a["ok"] and a["status_code"] == 200
    [r] = api.receivers()
    assert (r["secret"], r["circuit"], r["pending"], r["dead"]) == ("set (literal)", "closed", 0, 0)
    assert "QUJDREVGR0g" not in repr(r)           # the secret itself is never returned
    assert api.test_receiver("hook").ok and httpserver.log[-1][0].get_json()["test"] is True
    assert api.status()["notifications"]["routes"] == 1


def test_notification_errors_are_usage_errors_naming_the_value(api):
    with pytest.raises(UsageError, match="unknown receiver nobody"):
        api.add_route("nobody")
    with pytest.raises(UsageError, match="a webhook receiver needs --url"):
        api.add_receiver("hook", "webhook")
    with pytest.raises(UsageError, match="--for DURATION or --until TIME"):
        api.add_silence("why")
    silence = api.add_silence("deploy", duration=dt.timedelta(hours=1), detector="failed_debit")
    assert [s["silence_id"] for s in api.silences()] == [silence]
    api.expire_silence(silence)
    assert api.silences() == [] and [s["state"] for s in api.silences(all=True)] == ["ended"]
    with pytest.raises(UsageError, match="no active or coming silence"):
        api.expire_silence(silence)
    with pytest.raises(UsageError, match="--status must be one of"):
        api.deliveries(status="lost")
