"""The delivery worker (`monitorctl notify`): drains the outbox (docs/notifications.md).

It wakes on `NOTIFY monitor_events` (every transition sends one) and polls as a fallback; claims due
deliveries in batches under a lease (monitor.claim_deliveries, FOR UPDATE SKIP LOCKED: any number of
workers on any number of hosts); sends each batch on a few threads; records every attempt
(monitor.record_attempt: sent, retried with backoff, or dead); every few seconds enqueues the
repeats and escalations that time made due. SIGTERM or SIGINT ends it after the batch in hand."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

import psycopg

from .. import db
from ..db import connect
from . import senders

DUE_EVERY = 30.0  # seconds between looks for repeats and escalations (one worker looks at a time)


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, dsn: str, name: str | None = None, batch: int = 100, lease: float = 60.0,
                 poll: float = 5.0, threads: int = 8, say: Callable[[str], None] = lambda m: None):
        self.dsn, self.name, self.batch, self.lease, self.poll = dsn, name or default_name(), batch, lease, poll
        self.threads, self.say = threads, say
        self.stopping = threading.Event()
        self.sent = self.failed = self.dead = 0

    def stop(self, *_args) -> None:
        self.stopping.set()

    def run(self, once: bool = False, install_signals: bool = True) -> dict:
        """Until stopped (or, with once, until nothing is due): returns the counts."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        with connect(self.dsn) as conn, connect(self.dsn) as listener, \
                ThreadPoolExecutor(self.threads, thread_name_prefix="notify") as pool:
            db.run(listener, "notify_listen")
            last_due = 0.0
            while not self.stopping.is_set():
                if time.monotonic() - last_due >= DUE_EVERY or once:
                    db.value(conn, "notify_enqueue_due")
                    last_due = time.monotonic()
                claimed = self.claim(conn)
                if claimed:
                    self.deliver(conn, pool, claimed)
                    continue
                if once:
                    break
                self.wait(listener)
        return {"sent": self.sent, "failed": self.failed, "dead": self.dead}

    def claim(self, conn: psycopg.Connection) -> list[dict]:
        return db.rows(conn, "notify_claim", {"worker": self.name, "limit": self.batch,
                                              "lease": dt.timedelta(seconds=self.lease)})

    def deliver(self, conn: psycopg.Connection, pool: ThreadPoolExecutor, claimed: list[dict]) -> None:
        """Send a claimed batch on the pool's threads and record each outcome as it comes. A delivery
        whose lease would run out before its send could time out is not sent: another worker claims it
        when the lease expires (sending it here too would send it twice)."""
        deadline = time.monotonic() + self.lease - min(3 * senders.TIMEOUT, self.lease / 2)

        def send(d: dict):
            if time.monotonic() > deadline:
                return None
            return senders.send(d)

        futures = {pool.submit(send, d): d for d in claimed}
        for future in as_completed(futures):
            d, outcome = futures[future], future.result()
            if outcome is None:
                continue
            status = db.value(conn, "notify_record", {
                "delivery_id": d["delivery_id"], "worker": self.name, "attempt": d["attempts"], "ok": outcome.ok,
                "started": outcome.started_at, "latency_ms": round(outcome.latency_ms, 2),
                "status_code": outcome.status_code, "reply": outcome.reply, "retry": outcome.retry,
                "retry_after": dt.timedelta(seconds=outcome.retry_after) if outcome.retry_after is not None else None,
            })
            what = (f"delivery {d['delivery_id']} ({d['transition']}"
                    + (f" of event {d['event']['event_id']}" if d.get("event") else "") + f") to {d['receiver']}")
            code = f" {outcome.status_code}" if outcome.status_code else ""
            if status is None:
                self.say(f"{what}: pruned while it was sent")
            elif outcome.ok:
                self.sent += 1
                self.say(f"sent {what}:{code} in {outcome.latency_ms:.0f} ms")
            elif status == "dead":
                self.dead += 1
                self.say(f"gave up on {what}:{code} {outcome.reply}")
            else:
                self.failed += 1
                self.say(f"failed {what}, will retry:{code} {outcome.reply}")

    def wait(self, listener: psycopg.Connection) -> None:
        """Until a NOTIFY, the poll interval, or a stop: whichever comes first."""
        deadline = time.monotonic() + self.poll
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _n in listener.notifies(timeout=min(left, 0.5), stop_after=1):
                return
