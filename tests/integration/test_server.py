"""`monitorctl serve`'s application on a real uvicorn server over real HTTP: /metrics, the probes
(including a database that stops and comes back), the dashboard's pages, sign-in, CSRF, acknowledge
and resolve, and the live stream."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from http.cookiejar import CookieJar

import pytest
import uvicorn
from psycopg import sql
from prometheus_client.parser import text_string_to_metric_families

from monitorctl import embedded
from monitorctl.install import install
from monitorctl.server.app import create_app
from tests.ledger import Ledger

TOKEN = "operator-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(dsn: str, token: str | None = TOKEN, cache_seconds: float = 0.0):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dsn, token=token, cache_seconds=cache_seconds),
                                           host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Browser:
    """urllib with cookies, that does not follow redirects (a 303 is an answer to check)."""

    def __init__(self, base: str):
        self.base, self.jar = base, CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, **form) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def events_for(conn) -> dict[str, int]:
    ledger = Ledger(conn).recent(60)
    ledger.txn("t1", "C-1", amount=-7, status="failed", before=10, after=3)
    ledger.run("failed_debit")
    ledger.account("N-1", balance=-5)
    ledger.run("negative_balance")
    return dict(conn.execute("select detector, event_id from monitor.events").fetchall())


def test_metrics_report_what_the_database_holds(db, conn):
    events_for(conn)
    conn.execute("select monitor.snapshot()")
    with serving(db) as base:
        status, text = Browser(base).get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("monitorctl_events_active", (("detector", "failed_debit"), ("severity", "critical"),
                                                  ("status", "open")))] == 1
    assert samples[("monitorctl_events_active_by_severity", (("severity", "high"),))] == 1
    assert samples[("monitorctl_events_opened_total", ())] == 2
    assert samples[("monitorctl_events_resolved_total", ())] == 0
    assert samples[("monitorctl_detector_last_run_status", (("detector", "failed_debit"), ("status", "ok")))] == 1
    assert samples[("monitorctl_detector_lag_seconds", (("detector", "failed_debit"),))] >= 0
    assert ("monitorctl_ledger_transactions_last_hour", ()) in samples
    assert families["monitorctl_events_opened"].type == "counter"
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package: the exposition passes its linter
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_resolutions_are_counted_by_a_person_and_by_the_runner(db, conn):
    ids = events_for(conn)
    with conn.transaction(force_rollback=True):               # a resolution rolled back counts nothing
        conn.execute("select monitor.resolve(array[%s]::bigint[], 'not yet')", (ids["failed_debit"],))
    conn.execute("select monitor.resolve(array[%s]::bigint[], 'refunded')", (ids["failed_debit"],))
    conn.execute("update ledger.accounts set balance = 1 where account_id = 'N-1'")
    Ledger(conn).run("negative_balance")                       # resolved by the runner
    with serving(db) as base:
        text = Browser(base).get("/metrics")[1]
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["monitorctl_events_resolved_total"] == 2


def test_metrics_list_receivers_backlog_and_circuit(db, conn):
    conn.execute("select monitor.add_receiver('hook', 'webhook', '{\"url\": \"http://127.0.0.1:9/\"}')")
    conn.execute("select monitor.add_route('hook')")
    events_for(conn)
    with serving(db) as base:
        text = Browser(base).get("/metrics")[1]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("monitorctl_deliveries", (("receiver", "hook"), ("status", "pending")))] == 2
    assert samples[("monitorctl_receiver_circuit_state", (("receiver", "hook"), ("state", "closed")))] == 1


def test_probes_follow_the_database_down_and_back():
    server = embedded.start_local()
    try:
        dsn = server.create_database("probes")
        install(dsn, with_ledger=True, do_schedule=False)
        stopper = next(s for s in server._stop if isinstance(s, embedded._LocalStopper))
        pg_ctl = [str(stopper.bindir / "pg_ctl"), "-D", str(stopper.datadir), "-w"]
        with serving(dsn) as base:
            b = Browser(base)
            assert b.get("/health/live") == (200, "ok") and b.get("/health/ready")[0] == 200
            subprocess.run(embedded._as_server_user(pg_ctl + ["-m", "fast", "stop"]), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            status, text = b.get("/health/ready")
            assert status == 503 and "cannot connect" in text
            assert b.get("/health/live") == (200, "ok")          # the process still answers
            assert b.get("/health")[0] == 503
            subprocess.run(embedded._as_server_user(pg_ctl + ["start"]), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert b.get("/health/ready")[0] == 200
    finally:
        server.stop()


def test_health_says_what_status_health_says(db, conn):
    events_for(conn)
    with serving(db) as base:
        status, text = Browser(base).get("/health")
    doc = json.loads(text)
    assert status == 503 and not doc["healthy"] and "1 critical event(s) open" in doc["problems"]


def test_dashboard_pages_and_filters(db, conn):
    ids = events_for(conn)
    with serving(db) as base:
        b = Browser(base)
        status, html = b.get("/")
        assert status == 200 and 'data-severity="critical">1<' in html and "failed_debit" in html
        status, html = b.get("/events?severity=critical")
        assert status == 200 and f'data-event="{ids["failed_debit"]}"' in html
        assert f'data-event="{ids["negative_balance"]}"' not in html
        status, html = b.get(f"/events?detector=negative_balance&status=all")
        assert f'data-event="{ids["negative_balance"]}"' in html and f'data-event="{ids["failed_debit"]}"' not in html
        status, html = b.get(f"/events/{ids['failed_debit']}")
        assert status == 200 and "Evidence" in html and "opened" in html
        assert 'id="ack"' not in html                       # not signed in: read-only
        assert b.get("/events/999999")[0] == 404


def test_acknowledge_and_resolve_need_the_token_and_the_csrf_token(db, conn):
    event_id = events_for(conn)["failed_debit"]
    with serving(db) as base:
        b = Browser(base)
        assert b.post(f"/events/{event_id}/ack")[0] == 403                     # not signed in
        assert b.post("/login", token="wrong")[0] == 403
        assert b.post("/login", token=TOKEN, next=f"/events/{event_id}")[0] == 303
        html = b.get(f"/events/{event_id}")[1]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        assert b.post(f"/events/{event_id}/ack")[0] == 403                     # no CSRF token
        assert b.post(f"/events/{event_id}/ack", csrf="0" * 64)[0] == 403
        assert conn.execute("select status from monitor.events where event_id = %s", (event_id,)).fetchone() == ("open",)
        assert b.post(f"/events/{event_id}/ack", csrf=csrf, actor="alice")[0] == 303
        assert conn.execute("select status, acknowledged_by from monitor.events where event_id = %s",
                            (event_id,)).fetchone() == ("acknowledged", "alice")
        assert b.post(f"/events/{event_id}/resolve", csrf=csrf, note="refunded")[0] == 303
        assert conn.execute("select status, resolution_note from monitor.events where event_id = %s",
                            (event_id,)).fetchone() == ("resolved", "refunded")
        assert b.post(f"/events/{event_id}/resolve", csrf=csrf)[0] == 409       # already resolved
    with serving(db, token=None) as base:                                        # no token: nobody writes
        b = Browser(base)
        assert b.post("/login", token="")[0] == 403


def test_the_live_stream_announces_a_new_event(db, conn):
    with serving(db) as base:
        with urllib.request.urlopen(base + "/live", timeout=10) as stream:
            time.sleep(0.5)
            events_for(conn)
            line = b""
            while not line.startswith(b"data:"):
                line = stream.readline()
    change = json.loads(line[5:])
    assert change["transition"] == "opened" and change["detector"] in ("failed_debit", "negative_balance")


def test_the_server_works_with_exactly_the_readers_grants_and_writes_with_the_operators(db, conn):
    from tests.acceptance.support import with_user

    event_id = events_for(conn)["failed_debit"]
    made = []
    try:
        for kind in ("reader", "operator"):
            role = f"web_{kind}_{event_id}_{time.monotonic_ns()}"
            conn.execute(sql.SQL("create role {} login; grant {} to {}").format(
                sql.Identifier(role), sql.Identifier(f"monitor_{kind}"), sql.Identifier(role)))
            made.append(role)
        with serving(with_user(db, made[0])) as base:           # monitor_reader: everything but writing
            b = Browser(base)
            for path in ("/metrics", "/", "/events?status=all", f"/events/{event_id}", "/health/ready"):
                assert b.get(path)[0] == 200, path
            assert b.post("/login", token=TOKEN)[0] == 303
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', b.get(f"/events/{event_id}")[1]).group(1)
            status, text = b.post(f"/events/{event_id}/ack", csrf=csrf)
            assert status == 403 and "monitor_operator" in text
        with serving(with_user(db, made[1])) as base:           # monitor_operator: acknowledges
            b = Browser(base)
            b.post("/login", token=TOKEN)
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', b.get(f"/events/{event_id}")[1]).group(1)
            assert b.post(f"/events/{event_id}/ack", csrf=csrf)[0] == 303
        assert conn.execute("select status from monitor.events where event_id = %s", (event_id,)).fetchone() == \
            ("acknowledged",)
    finally:
        for role in made:
            conn.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))


def test_serve_logs_a_json_line_per_request_and_stops_cleanly_on_sigterm(db):
    import signal

    from tests.acceptance.support import MONITORCTL, cli_env

    port = free_port()
    proc = subprocess.Popen([*MONITORCTL, "--dsn", db, "serve", "--port", str(port), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        status = None
        deadline = time.time() + 20
        while status is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:
                    status = r.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # uvicorn shuts down (requests in hand finished), then ends by the signal it was sent, as a
    # process stopped by SIGTERM conventionally does
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in err, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"method": "GET", "path": "/health/live", "status": 200} in [
        {k: line[k] for k in ("method", "path", "status")} for line in lines]
