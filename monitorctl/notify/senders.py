"""Sending one delivery to one receiver, and judging the reply: sent, retry later (and when), or
give up. HTTP for webhooks, Slack and PagerDuty; SMTP for email. Secrets are read at send time from
the environment variable the receiver names (or its literal secret) and never leave this module."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import os
import smtplib
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage

from standardwebhooks.webhooks import Webhook

from . import payload

TIMEOUT = 10.0  # seconds for one attempt
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    reply: str = ""
    retry: bool = True  # False: the receiver refused this delivery for good (a 4xx but 408 and 429)
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After)
    latency_ms: float = 0.0
    started_at: dt.datetime | None = None


class SecretMissing(Exception):
    pass


def secret_of(receiver: dict) -> str | None:
    """The receiver's secret: the environment variable it names, else its literal secret, else None."""
    var = receiver.get("secret_env")
    if var:
        value = os.environ.get(var)
        if not value:
            raise SecretMissing(f"environment variable {var} (the secret of receiver {receiver['receiver']}) "
                                "is not set for the worker")
        return value
    return receiver.get("secret")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def judge_http(code: int, reply: str, headers) -> Outcome:
    if 200 <= code < 300:
        return Outcome(True, code, reply)
    retry_after = retry_after_seconds(headers.get("Retry-After")) if code in (429, 503) else None
    permanent = 400 <= code < 500 and code not in (408, 429)
    return Outcome(False, code, reply, retry=not permanent, retry_after=retry_after)


_pool = threading.local()  # each sending thread keeps its connections open between requests


def _connection(parts: urllib.parse.SplitResult, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's open connection to the URL's host (made now: fresh is True)."""
    conns = _pool.__dict__.setdefault("conns", {})
    key = (parts.scheme, parts.hostname, parts.port)
    conn = conns.get(key)
    if conn is not None:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, False
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conns[key] = conn
    return conn, True


def _drop(parts: urllib.parse.SplitResult) -> None:
    conn = _pool.__dict__.get("conns", {}).pop((parts.scheme, parts.hostname, parts.port), None)
    if conn is not None:
        conn.close()


def post_json(url: str, body: str, headers: dict[str, str], timeout: float | None = None) -> Outcome:
    """POST over a kept-alive connection (a TLS handshake per notification would cost more than the
    notification). A kept connection the receiver closed meanwhile is replaced once, silently."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Outcome(False, None, "not an http(s) URL", retry=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    all_headers = {"Content-Type": "application/json", "User-Agent": "monitorctl", **headers}
    for _try in range(2):
        conn, fresh = _connection(parts, timeout or TIMEOUT)
        try:
            conn.request("POST", path, body=body.encode(), headers=all_headers)
            response = conn.getresponse()
            reply = response.read()
            if response.will_close:
                _drop(parts)
            return judge_http(response.status, reply[:300].decode(errors="replace"), response.headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            _drop(parts)
            if fresh:
                return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
        except (OSError, http.client.HTTPException) as exc:  # refused, timed out, unreachable, a bad reply
            _drop(parts)
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
    return Outcome(False, None, "the receiver closed the connection")


def send_webhook(d: dict, receiver: dict) -> Outcome:
    """POST the JSON body, signed per Standard Webhooks when the receiver has a whsec_ secret: the
    delivery's idempotency key is the webhook-id, the same at every attempt."""
    body = payload.dumps(payload.webhook_body(d))
    headers = {}
    secret = secret_of(receiver)
    if secret:
        msg_id = str(d["idempotency_key"])
        now = dt.datetime.now(dt.timezone.utc)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(secret).sign(msg_id, now, body)}
    return post_json(receiver["receiver_config"]["url"], body, headers)


def send_slack(d: dict, receiver: dict) -> Outcome:
    """POST to the incoming webhook: its URL holds Slack's token, so it may be the secret itself."""
    url = secret_of(receiver) or receiver["receiver_config"].get("url")
    return post_json(url, payload.dumps(payload.slack_message(d, receiver["receiver_config"])), {})


def send_pagerduty(d: dict, receiver: dict) -> Outcome:
    key = secret_of(receiver)
    if not key:
        raise SecretMissing(f"receiver {receiver['receiver']} has no routing key")
    config = receiver["receiver_config"]
    return post_json(config.get("url") or PAGERDUTY_URL, payload.dumps(payload.pagerduty_event(d, key, config)), {})


def send_email(d: dict, receiver: dict) -> Outcome:
    config = receiver["receiver_config"]
    subject, text, html = payload.email_parts(d, config)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, config["from"], ", ".join(config["to"])
    msg["Message-ID"] = email.utils.make_msgid(idstring=str(d["idempotency_key"]), domain="monitorctl")
    msg["X-Monitorctl-Delivery"] = str(d["idempotency_key"])
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    host, port = config["host"], int(config.get("port") or (465 if config.get("security") == "tls" else 25))
    try:
        if config.get("security") == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
        with smtp:
            if config.get("security") == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.get("user"):
                smtp.login(config["user"], secret_of(receiver) or "")
            refused = smtp.send_message(msg)
            code, reply = smtp.noop()
    except smtplib.SMTPResponseException as exc:
        # 5xx: refused for good (an unknown recipient, a rejected login); 4xx: try again later
        return Outcome(False, exc.smtp_code, exc.smtp_error.decode(errors="replace")[:300],
                       retry=not 500 <= exc.smtp_code < 600)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _m in exc.recipients.values()]
        return Outcome(False, codes[0] if codes else None, f"recipients refused: {exc.recipients}"[:300],
                       retry=not all(500 <= c < 600 for c in codes))
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
    if refused:
        return Outcome(False, None, f"recipients refused: {refused}"[:300])
    return Outcome(True, 250, f"accepted for {', '.join(config['to'])}")


SENDERS = {"webhook": send_webhook, "slack": send_slack, "pagerduty": send_pagerduty, "email": send_email}


def send(d: dict) -> Outcome:
    """Send one claimed delivery; never raises (a failure is an Outcome)."""
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    try:
        outcome = SENDERS[d["receiver_type"]](d, d)
    except SecretMissing as exc:
        outcome = Outcome(False, None, str(exc))
    except Exception as exc:  # a bad config or template: recorded with the attempt, retried like a failure
        outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
    outcome.latency_ms = (time.perf_counter() - started) * 1000.0
    outcome.started_at = started_at
    return outcome
