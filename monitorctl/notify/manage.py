"""The notification operations of the Python API (monitorctl.api.Monitor has them): receivers, routes,
silences, deliveries, a test send and the worker (docs/notifications.md). Every value is checked by
the SQL functions they call (sql/075_notifications.sql), which decide each error and its wording."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import psycopg
from psycopg.types.json import Jsonb

from .. import db
from ..errors import MonitorError, UsageError
from . import senders
from .worker import Worker

RECEIVER_TYPES = ("webhook", "slack", "email", "pagerduty")
DELIVERY_STATUSES = ("pending", "failed", "sent", "dead", "suppressed", "digested")
SMTP_SECURITY = ("starttls", "tls")
HOST_PORT = re.compile(r"^\[?([A-Za-z0-9.\-:]+?)\]?(?::(\d{1,5}))?$")


@contextmanager
def refused():
    """The database's one-line refusal of a bad value as a UsageError (exit 2); nothing was changed."""
    try:
        yield
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.CheckViolation,
            psycopg.errors.NoDataFound) as exc:
        raise UsageError(exc.diag.message_primary or str(exc)) from exc


def smtp_address(text: str) -> tuple[str, int | None]:
    m = HOST_PORT.match(text.strip())
    if not m or (m.group(2) and not 0 < int(m.group(2)) < 65536):
        raise UsageError(f"--smtp: {text!r} is not HOST or HOST:PORT, such as smtp.example.com:587")
    return m.group(1), int(m.group(2)) if m.group(2) else None


class Notifications:
    """Mixed into monitorctl.api.Monitor: ``self._installed()`` is its checked connection."""

    # -- receivers ----------------------------------------------------------------------------------

    def add_receiver(self, name: str, type: str, url: str | None = None, secret_env: str | None = None,
                     secret: str | None = None, smtp: str | None = None, to: Iterable[str] = (),
                     sender: str | None = None, security: str | None = None, user: str | None = None,
                     password_env: str | None = None, routing_key_env: str | None = None,
                     dashboard_url: str | None = None, templates: str | None = None,
                     rate_per_minute: int | None = None) -> str:
        """Add (or replace) a receiver; one transaction. Secrets: the name of an environment variable of
        the worker (secret_env, password_env, routing_key_env), or a literal ``secret``."""
        if type not in RECEIVER_TYPES:
            raise UsageError(f"--type must be one of {', '.join(RECEIVER_TYPES)}, not {type}")
        if security is not None and security not in SMTP_SECURITY:
            raise UsageError(f"SMTP security must be starttls or tls, not {security}")
        config: dict = {}
        if url:
            config["url"] = url
        if dashboard_url:
            config["dashboard_url"] = dashboard_url
        if rate_per_minute is not None:
            config["rate_per_minute"] = rate_per_minute
        if type == "email":
            if smtp:
                config["host"], port = smtp_address(smtp)
                if port:
                    config["port"] = port
            config |= {"to": list(to), "from": sender}
            if security:
                config["security"] = security
            if user:
                config["user"] = user
            if templates:
                config["templates"] = templates
            secret_env = secret_env or password_env
        elif smtp or list(to) or sender or security or user or password_env:
            raise UsageError("--smtp, --to, --from, --starttls, --tls, --user and --password-env are for "
                             "--type email")
        if type == "pagerduty":
            secret_env = secret_env or routing_key_env
        elif routing_key_env:
            raise UsageError("--routing-key-env is for --type pagerduty")
        conn = self._installed()
        with refused(), conn.transaction():
            return db.value(conn, "receiver_add", {"name": name, "type": type, "config": Jsonb(config),
                                                   "secret_env": secret_env, "secret": secret})

    def receivers(self, name: str | None = None) -> list[dict]:
        """Every receiver with its delivery counts and circuit; never a secret (only where it comes from)."""
        return db.rows(self._installed(), "receivers_list", {"name": name})

    def remove_receiver(self, name: str) -> str:
        conn = self._installed()
        with refused():
            return db.value(conn, "receiver_remove", {"name": name})

    def test_receiver(self, name: str) -> senders.Outcome:
        """Send a test notification (marked as a test) to one receiver now; its outcome. Nothing is
        recorded: a test is not a delivery."""
        conn = self._installed()
        try:
            receiver = db.row(conn, "receiver_for_test", {"name": name})
        except psycopg.errors.InsufficientPrivilege:
            raise MonitorError("permission denied: sending a test needs monitor's owner (the role the worker "
                               "runs as), which may read the receiver's secret")
        if receiver is None:
            raise UsageError(f"unknown receiver {name} (monitorctl receivers list shows them)")
        now = dt.datetime.now(dt.timezone.utc)
        example = {"event_id": 0, "detector": "failed_debit", "kind": "finding", "severity": "critical",
                   "status": "open", "subject": "TEST", "dedup_key": "test", "txn_id": None, "amount": 1.0,
                   "summary": "test notification from monitorctl: nothing happened",
                   "evidence": {"test": True}, "first_seen": now.isoformat(), "last_seen": now.isoformat(),
                   "occurrences": 1, "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None,
                   "resolved_by": None, "resolution_note": None}
        delivery = receiver | {"delivery_id": 0, "idempotency_key": uuid.uuid4(), "transition": "opened",
                               "detector": "failed_debit", "attempts": 1, "event": example, "digest": None,
                               "test": True}
        return senders.send(delivery)

    # -- routes -------------------------------------------------------------------------------------

    def add_route(self, receiver: str, min_severity: str = "low", detectors: Iterable[str] = (),
                  subject: str | None = None, repeat: dt.timedelta | None = None, send_resolved: bool = True,
                  continue_: bool = False, escalate_after: dt.timedelta | None = None,
                  escalate_to: str | None = None) -> int:
        """Append a route after every other one; its id. One transaction."""
        conn = self._installed()
        with refused():
            return db.value(conn, "route_add", {
                "receiver": receiver, "min_severity": min_severity, "detectors": list(detectors) or None,
                "subject": subject, "repeat": repeat, "send_resolved": send_resolved,
                "continue": continue_, "escalate_after": escalate_after, "escalate_to": escalate_to})

    def routes(self) -> list[dict]:
        return db.rows(self._installed(), "routes_list")

    def remove_route(self, route_id: int) -> int:
        conn = self._installed()
        with refused():
            return db.value(conn, "route_remove", {"id": route_id})

    # -- silences -----------------------------------------------------------------------------------

    def add_silence(self, comment: str, until: dt.datetime | None = None, duration: dt.timedelta | None = None,
                    starts: dt.datetime | None = None, detector: str | None = None,
                    subject: str | None = None) -> int:
        """Silence from ``starts`` (default now) for ``duration`` or ``until`` a time; its id."""
        if (until is None) == (duration is None):
            raise UsageError("a silence needs --for DURATION or --until TIME (one of them)")
        if duration is not None:
            until = (starts or dt.datetime.now(dt.timezone.utc)) + duration
        conn = self._installed()
        with refused():
            return db.value(conn, "silence_add", {"detector": detector, "subject": subject, "starts": starts,
                                                  "ends": until, "comment": comment})

    def silences(self, all: bool = False) -> list[dict]:
        """Active and coming silences (``all``: ended ones too)."""
        return db.rows(self._installed(), "silences_list", {"all": all})

    def expire_silence(self, silence_id: int) -> int:
        conn = self._installed()
        with refused():
            return db.value(conn, "silence_expire", {"id": silence_id})

    # -- deliveries ---------------------------------------------------------------------------------

    def deliveries(self, status: str | None = None, event_id: int | None = None, limit: int = 100) -> list[dict]:
        """The newest deliveries first (of one status, or of one event and the digest it went in)."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise UsageError(f"--status must be one of {', '.join(DELIVERY_STATUSES)}, not {status}")
        return db.rows(self._installed(), "deliveries_list", {"status": status, "event": event_id, "limit": limit})

    def retry_delivery(self, delivery_id: int) -> str:
        """Send a dead (or failed) delivery again at the worker's next look."""
        conn = self._installed()
        with refused():
            return db.value(conn, "delivery_retry", {"id": delivery_id})

    def event_attempts(self, event_id: int) -> list[dict]:
        """Who was told of one event and how each attempt went."""
        return db.rows(self._installed(), "event_attempts", {"id": event_id})

    def routes_configured(self) -> int:
        return db.value(self._installed(), "routes_count")

    # -- the worker ---------------------------------------------------------------------------------

    def notify(self, once: bool = False, name: str | None = None, batch: int = 100, lease: float = 60.0,
               poll: float = 5.0, say: Callable[[str], None] | None = None) -> dict:
        """Run the delivery worker until SIGTERM/SIGINT (``once``: until nothing is due); its counts."""
        self._installed()
        worker = Worker(self.dsn, name=name, batch=batch, lease=lease, poll=poll, say=say or self.say)
        return worker.run(once=once)

