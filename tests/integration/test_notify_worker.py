"""The delivery worker against real receivers: a local HTTP server that verifies Standard Webhooks
signatures with the reference library, Slack- and PagerDuty-shaped endpoints, and a real SMTP server."""

from __future__ import annotations

import email
import json
import socket
import time
from email import policy

import psycopg
import pytest
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from monitorctl.notify.worker import Worker
from tests.ledger import Ledger

SECRET = "whsec_" + "bW9uaXRvcmN0bC10ZXN0LXNlY3JldC0xMjM0NTY="


@pytest.fixture
def ledger(conn):
    conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
    return Ledger(conn)


def add_receiver(conn, name, type_, config, secret_env=None, secret=None):
    conn.execute("insert into monitor.receivers (name, type, config, secret_env, secret) values (%s, %s, %s, %s, %s)",
                 (name, type_, json.dumps(config), secret_env, secret))
    conn.execute("insert into monitor.routes (position, receiver) values"
                 " ((select count(*) from monitor.routes), %s)", (name,))
    conn.execute("update monitor.routes set continue_after = true")


def drain(db, **kw) -> dict:
    return Worker(db, name="test-worker", poll=0.2, **kw).run(once=True, install_signals=False)


def test_webhook_is_signed_and_carries_the_event(ledger, conn, db, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    add_receiver(conn, "hook", "webhook", {"url": httpserver.url_for("/hook")}, secret_env="HOOK_SECRET")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    ledger.txn("t1", "A", amount=-7, status="failed", before=10, after=3)
    ledger.run("failed_debit")
    assert drain(db) == {"sent": 1, "failed": 0, "dead": 0}
    [(request, _)] = httpserver.log
    body = Webhook(SECRET).verify(request.get_data(), dict(request.headers))   # raises if the signature is wrong
    assert body["transition"] == "opened" and body["event"]["detector"] == "failed_debit"
    assert body["event"]["subject"] == "A" and body["event"]["amount"] == 7
    assert request.headers["webhook-id"] == body["idempotency_key"]
    assert conn.execute("select status, attempts from monitor.deliveries").fetchall() == [("sent", 1)]
    assert conn.execute("select transition, note from monitor.alert_history where transition = 'notified'"
                        ).fetchall() == [("notified", "opened to hook")]


def test_failures_are_retried_and_the_idempotency_key_stays(ledger, conn, db, httpserver):
    add_receiver(conn, "hook", "webhook", {"url": httpserver.url_for("/hook")}, secret=SECRET)
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    httpserver.expect_ordered_request("/hook").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "1"}))
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert drain(db) == {"sent": 0, "failed": 1, "dead": 0}
    conn.execute("update monitor.deliveries set due_at = now()")
    assert drain(db) == {"sent": 0, "failed": 1, "dead": 0}
    wait = conn.execute("select extract(epoch from due_at - now()) from monitor.deliveries").fetchone()[0]
    assert 0 < wait <= 1.5                             # Retry-After: 1 second
    time.sleep(1.2)
    assert drain(db) == {"sent": 1, "failed": 0, "dead": 0}
    keys = {r[0].headers["webhook-id"] for r in httpserver.log}
    assert len(httpserver.log) == 3 and len(keys) == 1
    codes = [r[0] for r in conn.execute("select status_code from monitor.delivery_attempts order by attempt_id")]
    assert codes == [500, 429, 200]


def test_a_4xx_is_not_retried_and_connection_refused_is(ledger, conn, db, httpserver):
    add_receiver(conn, "bad", "webhook", {"url": httpserver.url_for("/bad")})
    add_receiver(conn, "gone", "webhook", {"url": "http://127.0.0.1:9/"})
    httpserver.expect_request("/bad").respond_with_data("no such hook", status=404)
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert drain(db) == {"sent": 0, "failed": 1, "dead": 1}
    rows = dict(conn.execute("select receiver, status from monitor.deliveries").fetchall())
    assert rows == {"bad": "dead", "gone": "failed"}
    [(reply,)] = conn.execute("select reply from monitor.delivery_attempts where receiver = 'gone'").fetchall()
    assert "refused" in reply.lower()


def test_a_timeout_is_a_failure_that_is_retried(ledger, conn, db, httpserver, monkeypatch):
    from monitorctl.notify import senders
    monkeypatch.setattr(senders, "TIMEOUT", 0.5)
    add_receiver(conn, "slow", "webhook", {"url": httpserver.url_for("/slow")})
    httpserver.expect_request("/slow").respond_with_handler(lambda r: time.sleep(1.5) or Response("late"))
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert drain(db) == {"sent": 0, "failed": 1, "dead": 0}
    [(reply,)] = conn.execute("select reply from monitor.delivery_attempts").fetchall()
    assert "timed out" in reply.lower()


def test_slack_and_pagerduty_shapes(ledger, conn, db, httpserver, monkeypatch):
    monkeypatch.setenv("PD_KEY", "R0UTINGKEY")
    add_receiver(conn, "chat", "slack", {"url": httpserver.url_for("/slack"), "dashboard_url": "http://dash"})
    add_receiver(conn, "pager", "pagerduty", {"url": httpserver.url_for("/v2/enqueue")}, secret_env="PD_KEY")
    httpserver.expect_request("/slack").respond_with_data("ok")
    httpserver.expect_request("/v2/enqueue").respond_with_json({"status": "success"}, status=202)
    ledger.txn("t1", "A", amount=-7, status="failed", before=10, after=3)
    ledger.run("failed_debit")
    assert drain(db)["sent"] == 2, conn.execute("select receiver, reply from monitor.delivery_attempts").fetchall()
    event_id = conn.execute("select event_id from monitor.events").fetchone()[0]
    conn.execute("select monitor.acknowledge(array[%s]::bigint[], 'alice')", (event_id,))
    conn.execute("select monitor.resolve(array[%s]::bigint[], 'refunded', 'alice')", (event_id,))
    assert drain(db)["sent"] == 4
    by_path: dict[str, list] = {}
    for request, _ in httpserver.log:
        by_path.setdefault(request.path, []).append(request.get_json())
    slack = by_path["/slack"][0]
    assert "CRITICAL failed_debit" in slack["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in slack["blocks"][1]["fields"]}
    assert fields["*Subject*"] == "A" and fields["*Amount*"] == "7"
    assert slack["blocks"][-1]["elements"][0]["url"] == f"http://dash/events/{event_id}"
    pd = by_path["/v2/enqueue"]
    assert [p["event_action"] for p in pd] == ["trigger", "acknowledge", "resolve"]
    assert len({p["dedup_key"] for p in pd}) == 1 and all(p["routing_key"] == "R0UTINGKEY" for p in pd)
    assert pd[0]["payload"]["severity"] == "critical"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    with socket.socket() as s:          # a free port (the controller checks it answers before it returns)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, inbox
    controller.stop()


def test_email_reaches_a_real_smtp_server_with_text_and_html(ledger, conn, db, smtp_server):
    controller, inbox = smtp_server
    add_receiver(conn, "mail", "email", {"host": "127.0.0.1", "port": controller.port,
                                         "from": "monitor@example.com", "to": ["oncall@example.com"]})
    ledger.txn("t1", "A", amount=-7, status="failed", before=10, after=3)
    ledger.run("failed_debit")
    assert drain(db)["sent"] == 1
    [(rcpt, msg)] = inbox.messages
    assert rcpt == ["oncall@example.com"]
    assert msg["Subject"].startswith("[monitorctl] CRITICAL failed_debit new")
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "subject:    A" in text and "<td>A</td>" in html


def test_email_templates_can_be_overridden(ledger, conn, db, smtp_server, tmp_path):
    controller, inbox = smtp_server
    (tmp_path / "email.txt.j2").write_text("Custom: {{ event.subject }} {{ words }}\n")
    add_receiver(conn, "mail", "email", {"host": "127.0.0.1", "port": controller.port,
                                         "from": "m@example.com", "to": ["o@example.com"],
                                         "templates": str(tmp_path)})
    ledger.account("Z", balance=-1)
    ledger.run("negative_balance")
    assert drain(db)["sent"] == 1
    assert inbox.messages[0][1].get_body(("plain",)).get_content().strip() == "Custom: Z new"


def test_two_workers_at_once_send_each_delivery_once(ledger, conn, db, httpserver):
    import threading
    conn.execute("update monitor.settings set value = '1000' where key = 'notify.digest_threshold'")
    add_receiver(conn, "hook", "webhook", {"url": httpserver.url_for("/hook")})
    httpserver.expect_request("/hook").respond_with_handler(lambda r: time.sleep(0.01) or Response("ok"))
    conn.execute("insert into ledger.accounts (account_id, balance) select 'S' || g, -1 from generate_series(1, 200) g")
    ledger.run("negative_balance")
    results = []
    workers = [Worker(db, name=f"w{i}", batch=10, poll=0.2) for i in range(2)]
    threads = [threading.Thread(target=lambda w=w: results.append(w.run(once=True, install_signals=False)))
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r["sent"] for r in results) == 200 and all(r["sent"] > 0 for r in results)
    ids = [r[0].get_json()["delivery_id"] for r in httpserver.log]
    assert len(ids) == 200 and len(set(ids)) == 200
