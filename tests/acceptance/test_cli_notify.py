"""Notifications through the installed `monitorctl` (docs/notifications.md): receivers, routes,
silences, the worker as a subprocess (killed mid-send, stopped with SIGTERM), real local receivers."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from tests.acceptance.support import MONITORCTL, cli_env, run_cli
from tests.ledger import Ledger

SECRET = "whsec_" + "c3VwZXItc2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ="


def ok(*args, dsn, **env):
    r = run_cli(*args, dsn=dsn, **env)
    assert r.returncode == 0, (args, r.stderr)
    return r


def failed_debit(conn, txn="t1", account="C-1"):
    ledger = Ledger(conn).recent(30)
    ledger.txn(txn, account, amount=-7, status="failed", before=10, after=3)
    ledger.run("failed_debit")
    return conn.execute("select event_id from monitor.events where dedup_key = %s", (txn,)).fetchone()[0]


def test_get_paged_in_three_commands_and_acknowledging_acknowledges_the_incident(db, conn, httpserver):
    httpserver.expect_request("/v2/enqueue").respond_with_json({"status": "success"}, status=202)
    env = {"PD_ROUTING_KEY": "R0UTINGKEY0000"}
    ok("receivers", "add", "oncall", "--type", "pagerduty", "--routing-key-env", "PD_ROUTING_KEY",
       "--url", httpserver.url_for("/v2/enqueue"), dsn=db)
    ok("routes", "add", "--receiver", "oncall", "--min-severity", "high", dsn=db)
    event_id = failed_debit(conn)
    r = ok("notify", "--once", dsn=db, **env)
    assert f"sent delivery 1 (opened of event {event_id}) to oncall: 202" in r.stderr
    ok("ack", str(event_id), "--as", "alice", dsn=db)
    ok("notify", "--once", dsn=db, **env)
    sent = [req.get_json() for req, _ in httpserver.log]
    assert [s["event_action"] for s in sent] == ["trigger", "acknowledge"]
    assert sent[0]["routing_key"] == "R0UTINGKEY0000" and sent[0]["dedup_key"] == sent[1]["dedup_key"]
    show = json.loads(ok("show", str(event_id), "--format", "json", dsn=db).stdout)
    assert [(n["transition"], n["receiver"], n["status"], n["status_code"]) for n in show["notifications"]] == [
        ("opened", "oncall", "sent", 202), ("acknowledged", "oncall", "sent", 202)]
    assert [h["transition"] for h in show["history"]] == ["opened", "notified", "acknowledged", "notified"]
    text = ok("show", str(event_id), dsn=db).stdout
    assert "Notifications:" in text and "to oncall" in text


def test_a_signed_webhook_and_a_test_notification(db, conn, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    env = {"HOOK_SECRET": SECRET}
    ok("receivers", "add", "hook", "--type", "webhook", "--url", httpserver.url_for("/hook"),
       "--secret-env", "HOOK_SECRET", dsn=db)
    ok("routes", "add", "--receiver", "hook", dsn=db)
    r = ok("receivers", "test", "hook", dsn=db, **env)
    assert "test notification sent to hook: 200" in r.stderr
    failed_debit(conn)
    ok("notify", "--once", dsn=db, **env)
    test, real = [(req.get_data(), dict(req.headers)) for req, _ in httpserver.log]
    assert Webhook(SECRET).verify(*test)["test"] is True
    body = Webhook(SECRET).verify(*real)
    assert body["transition"] == "opened" and body["event"]["detector"] == "failed_debit"
    with pytest.raises(Exception):
        Webhook("whsec_" + "b3RoZXI=").verify(*real)   # another secret does not verify it
    # without the secret in its environment, the worker records why, and says so in one line each
    failed_debit(conn, "t2")
    r = run_cli("notify", "--once", dsn=db)
    assert "environment variable HOOK_SECRET" in r.stderr and SECRET not in r.stderr


def test_secrets_never_appear_in_any_output(db, conn, httpserver):
    literal = "whsec_" + "bGl0ZXJhbC1zZWNyZXQtbmV2ZXItcHJpbnRlZA=="
    httpserver.expect_request("/hook", query_string="token=urltoken123").respond_with_data("nope", status=500)
    ok("receivers", "add", "hook", "--type", "webhook", "--url", httpserver.url_for("/hook") + "?token=urltoken123",
       "--secret", literal, dsn=db)
    ok("receivers", "add", "mail", "--type", "email", "--smtp", "127.0.0.1:9", "--from", "m@example.com",
       "--to", "o@example.com", "--user", "monitor", "--password-env", "SMTP_PASSWORD", dsn=db)
    ok("routes", "add", "--receiver", "hook", "--continue", dsn=db)
    ok("routes", "add", "--receiver", "mail", dsn=db)
    event_id = failed_debit(conn)
    password = "smtp-password-never-printed"
    outputs = [run_cli("notify", "--once", dsn=db, SMTP_PASSWORD=password)]
    for args in (["receivers", "list"], ["routes", "list"], ["deliveries"], ["status"], ["show", str(event_id)],
                 ["receivers", "test", "hook"]):
        for fmt in ([], ["--format", "json"], ["--format", "csv"]) if args[-1] in ("list", "deliveries", "status") \
                else ([],):
            outputs.append(run_cli(*args, *fmt, dsn=db, SMTP_PASSWORD=password))
    listing = json.loads(run_cli("receivers", "list", "--format", "json", dsn=db).stdout)
    assert {r["name"]: r["secret"] for r in listing} == {"hook": "set (literal)", "mail": "env SMTP_PASSWORD"}
    for r in outputs:
        assert literal not in r.stdout + r.stderr and password not in r.stdout + r.stderr, r.args
        assert "urltoken123" not in r.stdout + r.stderr, r.args      # a token in a URL is not shown either


def test_a_worker_killed_mid_send_leaves_its_delivery_to_another_and_nothing_is_lost(db, conn, httpserver):
    first = threading.Event()

    def slow_then_fine(request):
        if not first.is_set():
            first.set()
            time.sleep(3)         # the worker is killed while it waits for this answer
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(slow_then_fine)
    ok("receivers", "add", "hook", "--type", "webhook", "--url", httpserver.url_for("/hook"), "--secret", SECRET,
       dsn=db)
    ok("routes", "add", "--receiver", "hook", dsn=db)
    worker = subprocess.Popen([*MONITORCTL, "--dsn", db, "notify", "--lease", "5", "--name", "doomed"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        failed_debit(conn)
        assert first.wait(15), "the worker never sent"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert conn.execute("select status, leased_by from monitor.deliveries").fetchone() == ("pending", "doomed")
    r = run_cli("notify", "--once", "--name", "second", dsn=db)
    assert "sent delivery" not in r.stderr                # still leased to the dead worker
    time.sleep(5)                                         # its lease runs out
    ok("notify", "--once", "--name", "second", dsn=db)
    assert conn.execute("select status, attempts from monitor.deliveries").fetchone() == ("sent", 2)
    ids = [req.headers["webhook-id"] for req, _ in httpserver.log]
    assert len(ids) == 2 and ids[0] == ids[1]             # the same idempotency key: the receiver can drop it
    assert [r[0] for r in conn.execute("select worker from monitor.delivery_attempts")] == ["second"]


def test_sigterm_stops_the_worker_cleanly(db, conn, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    ok("receivers", "add", "hook", "--type", "webhook", "--url", httpserver.url_for("/hook"), dsn=db)
    ok("routes", "add", "--receiver", "hook", dsn=db)
    worker = subprocess.Popen([*MONITORCTL, "--dsn", db, "notify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=cli_env())
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        failed_debit(conn)
        while not httpserver.log and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert httpserver.log and time.monotonic() - t0 < 2      # woken by NOTIFY, not the 5 s poll
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "notify: 1 sent, 0 to retry, 0 given up" in err


def test_silences_routes_and_dead_letters_from_the_command_line(db, conn, httpserver):
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)
    ok("receivers", "add", "hook", "--type", "webhook", "--url", httpserver.url_for("/hook"), dsn=db)
    ok("routes", "add", "--receiver", "hook", "--detector", "failed_debit", "--subject", "C-*", dsn=db)
    r = ok("silence", "add", "--detector", "failed_debit", "--for", "1h", "--comment", "card maintenance", dsn=db)
    silence_id = r.stderr.split()[1]
    silenced = failed_debit(conn, "t1", "C-1")
    other = failed_debit(conn, "t2", "X-1")                      # not C-*: no route
    listing = json.loads(ok("silence", "list", "--format", "json", dsn=db).stdout)
    assert [(s["detector"], s["state"], s["comment"]) for s in listing] == [("failed_debit", "active",
                                                                           "card maintenance")]
    show = json.loads(ok("show", str(silenced), "--format", "json", dsn=db).stdout)
    assert show["history"][-1]["transition"] == "suppressed" and "card maintenance" in show["history"][-1]["note"]
    assert json.loads(ok("show", str(other), "--format", "json", dsn=db).stdout)["notifications"] == []
    ok("silence", "expire", silence_id, dsn=db)
    assert json.loads(ok("silence", "list", "--format", "json", dsn=db).stdout) == []
    sent = failed_debit(conn, "t3", "C-2")
    ok("notify", "--once", dsn=db)                               # 410: refused for good, not retried
    dead = json.loads(ok("deliveries", "--status", "dead", "--format", "json", dsn=db).stdout)
    # the new event, and the silenced one: critical, still open, due for a repeat once the silence ended
    assert sorted((d["event_id"], d["transition"], d["attempts"]) for d in dead) == [
        (silenced, "repeat", 1), (sent, "opened", 1)]
    status = json.loads(run_cli("status", "--format", "json", dsn=db).stdout)
    assert status["notifications"]["receivers"][0]["dead"] == 2
    assert any("given up" in p for p in status["health"]["problems"])
    ok("deliveries", "retry", str(dead[0]["delivery_id"]), dsn=db)
    assert json.loads(ok("deliveries", "--status", "pending", "--format", "json", dsn=db).stdout)[0]["delivery_id"] \
        == dead[0]["delivery_id"]
    r = run_cli("deliveries", "retry", str(dead[0]["delivery_id"]), dsn=db)
    assert r.returncode == 2 and "nothing to retry" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli("receivers", "remove", "hook", dsn=db)
    assert r.returncode == 2 and "remove the route first" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["receivers", "add", "x", "--type", "fax"], "--type must be one of"),
    (["receivers", "add", "x", "--type", "webhook", "--url", "ftp://x"], "url must be an http"),
    (["receivers", "add", "x", "--type", "webhook", "--url", "http://x", "--secret", "plain"], "whsec_"),
    (["receivers", "add", "x", "--type", "email", "--smtp", "h:99999", "--from", "a@b", "--to", "c@d"], "--smtp"),
    (["receivers", "add", "x", "--type", "email", "--smtp", "h:25"], "--from and at least one --to"),
    (["receivers", "add", "Bad Name", "--type", "webhook", "--url", "http://x"], "receiver name"),
    (["routes", "add", "--receiver", "nobody"], "unknown receiver nobody"),
    (["routes", "add", "--receiver", "hook", "--repeat", "forever"], "--repeat"),
    (["routes", "add", "--receiver", "hook", "--escalate-after", "15m"], "go together"),
    (["silence", "add", "--for", "1h", "--until", "2030-01-01T00:00Z", "--comment", "x"], "one of them"),
    (["silence", "add", "--detector", "nope", "--for", "1h", "--comment", "x"], "unknown detector nope"),
    (["silence", "add", "--until", "2000-01-01T00:00Z", "--comment", "x"], "must end after"),
    (["silence", "expire", "999"], "no active or coming silence 999"),
    (["deliveries", "--status", "lost"], "--status must be one of"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(db, conn, args, message):
    ok("receivers", "add", "hook", "--type", "webhook", "--url", "http://127.0.0.1:9/", dsn=db)
    before = conn.execute("select (select count(*) from monitor.receivers), (select count(*) from monitor.routes),"
                          " (select count(*) from monitor.silences)").fetchone()
    r = run_cli(*args, dsn=db)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr
    assert conn.execute("select (select count(*) from monitor.receivers), (select count(*) from monitor.routes),"
                        " (select count(*) from monitor.silences)").fetchone() == before
