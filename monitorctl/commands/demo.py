"""demo: a throwaway PostgreSQL with pg_cron, a synthetic festival with injected incidents, detection.

Nothing on the machine is touched: the server is a temporary cluster (monitorctl.embedded) that is
stopped and deleted at the end, unless --keep, which leaves it running (with the detectors scheduled
in pg_cron) and prints how to connect and how to stop it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import time
from typing import Optional

import typer
from standardwebhooks.webhooks import Webhook

from .. import embedded, output
from ..api import Monitor, RunSlice
from ..errors import MonitorError
from ..notify.local import LocalReceiver
from ..model import SEVERITIES
from .common import FORMAT_OPTION, Format, say
from .events import EVENT_COLUMNS, EVENT_KEYS

DATABASE = "festival"
# Detectors the festival's injected incidents must trigger (detector_health stays quiet).
EXPECTED = ["failed_debit", "balance_mismatch", "balance_chain", "consecutive_failures", "negative_balance",
            "stuck_pending", "failure_rate", "duplicate_scan", "concurrent_txn", "volume_anomaly"]


class Progress:
    """One line redrawn in place on a terminal; one line per step otherwise."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def step(self, name: str) -> None:
        if self.tty:
            bar = "#" * self.done + "." * (self.total - self.done)
            sys.stderr.write(f"\r  detecting [{bar}] {self.done}/{self.total} {name:<22}")
            sys.stderr.flush()

    def finished(self, name: str, opened: int, seconds: float) -> None:
        self.done += 1
        line = f"  [{self.done:>2}/{self.total}] {name:<22} {opened:>2} new event{'s' if opened != 1 else ' '}" \
               f"  {output.duration(seconds)}"
        if self.tty:
            sys.stderr.write("\r" + " " * 72 + "\r")
        say(line)


def detect(monitor: Monitor) -> None:
    """Run every enabled detector, one line of progress each."""
    progress = None
    started = time.monotonic()

    def step(at: RunSlice) -> None:
        nonlocal progress, started
        progress = progress or Progress(at.of)
        progress.step(at.detector)
        started = time.monotonic()

    def finished(result: dict) -> None:
        progress.finished(result["detector"], result["events_opened"], time.monotonic() - started)

    monitor.run(progress=step, done=finished)


def notified(receiver: LocalReceiver, secret: str, told: dict) -> None:
    """Say what reached the demo's webhook receiver, checking each signature as a receiver would."""
    for _at, _body, headers, raw in receiver.arrivals:
        Webhook(secret).verify(raw, headers)  # raises on a forged or altered message
    say(f"  notifications: {told['sent']} critical event(s) sent to a local webhook receiver, every signature "
        "verified (Standard Webhooks; docs/notifications.md)")
    for _at, body, _headers, _raw in receiver.arrivals[:3]:
        if body.get("digest"):
            say(f"    received a digest: {body['digest']['events']} new {body['event'] or 'events'}")
            continue
        e = body["event"]
        say(f"    received: {e['detector']} {e['subject']}: {output.printable(e['summary'])}")


def stop_command(server: embedded.Server) -> str:
    if server.container_id:
        return f"docker rm -f {server.container_id[:12]}"
    commands = []
    for node in (*server.workers, server):  # a Citus cluster: the workers, then the coordinator
        stopper = next((s for s in node._stop if isinstance(s, embedded._LocalStopper)), None)
        if stopper is not None:
            pg_ctl = embedded._as_server_user([str(stopper.bindir / "pg_ctl"), "-D", str(stopper.datadir), "stop"])
            commands.append(f"{' '.join(pg_ctl)} && rm -rf {stopper.base}")
    return " && ".join(commands)


def keep(server: embedded.Server, dsn: str, monitor: Monitor) -> dict:
    """Leave the server running: schedule the detectors, forget the clean-up, say how to use it."""
    import atexit

    # the demo installed without scheduling (its detectors ran once, by hand): schedule them now
    report = monitor.install(with_ledger=True, schedule_jobs=True, distributed=server.backend == "citus")
    report, why = report.scheduling, report.scheduling_off
    stop = stop_command(server)
    for node in (server, *server.workers):
        atexit.unregister(node.stop)
        node._stop.clear()
    return {"dsn": dsn, "stop": stop,
            "scheduling": f"pg_cron {report.version} runs the detectors every minute" if report
            else f"scheduling is off: {why}"}


def demo(
    keep_server: bool = typer.Option(False, "--keep", help="Leave the server running afterwards (detectors "
                                     "scheduled in pg_cron) and print its DSN and the command that stops it."),
    cards: int = typer.Option(3000, "--cards", min=100, max=50000, help="Festival cards (each makes 3 to 9 "
                              "transactions)."),
    hours: int = typer.Option(4, "--hours", min=1, max=24, help="Hours of festival, ending now."),
    seed: float = typer.Option(0.42, "--seed", min=-1, max=1, help="Random seed: the same seed, the same festival."),
    backend: Optional[str] = typer.Option(None, "--backend", metavar="local|docker|dsn|citus",
                                          help="Where the server runs: a local cluster (PostgreSQL's server "
                                          "binaries), a Docker container (docker/), your own server "
                                          "(MONITOR_TEST_DSN), or a three-node Citus cluster on this machine "
                                          "(docs/scaling.md). Default: MONITOR_TEST_BACKEND, else local "
                                          "when the binaries are installed, else Docker when an engine "
                                          "answers."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """On a fresh machine: start a throwaway PostgreSQL with pg_cron, install monitor with the
    reference ledger, load a synthetic festival (thousands of cards, top-ups, payments and scans) with a
    handful of injected incidents of every kind, run every detector, and show what was found. The server
    is removed at the end unless --keep. Takes a few seconds; needs PostgreSQL's server binaries
    (initdb, pg_ctl) and, for scheduling, pg_cron.

    Example: monitorctl demo --keep
    """
    began = time.monotonic()
    say("monitorctl demo: a throwaway PostgreSQL, a synthetic festival, and the detectors on it")
    try:
        server = embedded.start(progress=lambda m: say(f"  {m}"), backend=backend)
    except (embedded.EmbeddedError, OSError) as exc:
        raise MonitorError(f"cannot start a throwaway PostgreSQL for the demo: {exc}")
    kept = None
    try:
        dsn = server.create_database(DATABASE)
        with Monitor(dsn) as monitor:
            monitor.install(with_ledger=True, schedule_jobs=False, distributed=server.backend == "citus")
            say(f"  installed monitor and the reference ledger in database {DATABASE}"
                + (", distributed by account" if server.backend == "citus" else ""))
            counts = monitor.load_festival(cards, hours, seed)
            say(f"  festival: {counts['cards']:,} cards, {counts['transactions']:,} transactions and "
                f"{counts['scans']:,} scans over {hours} hours, {counts['incidents']} injected incidents")
            say(f"  baseline: {counts['baseline_transactions']:,} transactions in the same hour of the 4 weeks "
                "before (what volume_anomaly compares with)")
            with LocalReceiver() as receiver:
                secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
                monitor.add_receiver("demo-webhook", "webhook", url=receiver.url, secret=secret)
                monitor.add_route("demo-webhook", min_severity="critical")
                detect(monitor)
                told = monitor.notify(once=True, say=lambda message: None)
                notified(receiver, secret, told)
                monitor.remove_route(monitor.routes()[0]["route_id"])
                monitor.remove_receiver("demo-webhook")
            with monitor.events(status="all", limit=None) as rows:
                events = list(rows)
            if keep_server:
                kept = keep(server, dsn, monitor)
        missed = [d for d in EXPECTED if d not in {e["detector"] for e in events}]
        by_severity = {s: sum(1 for e in events if e["severity"] == s) for s in SEVERITIES}
        show(events, by_severity, fmt, kept)
        if missed:
            say(f"warning: no event from {', '.join(missed)}, which the festival should have triggered")
        say(f"done in {time.monotonic() - began:.1f} s")
        next_steps(kept)
    finally:
        if not kept:
            if server.backend == "external":  # someone else's server: leave it as it was
                with contextlib.suppress(Exception):
                    server.drop_database(DATABASE)
            server.stop()


def show(events: list[dict], by_severity: dict, fmt: Format, kept: dict | None) -> None:
    if fmt is Format.json:
        output.emit(output.dumps({"events": [{k: e[k] for k in EVENT_KEYS} for e in events],
                                  "by_severity": by_severity, "dsn": kept and kept["dsn"]}))
        return
    if fmt is Format.csv:
        output.emit(output.csv_text(events, EVENT_KEYS))
        return
    output.emit("")
    output.emit(output.table(events, EVENT_COLUMNS, colour=output.use_colour(), width=output.terminal_width()))
    output.emit("")
    colour = output.use_colour()
    output.emit(f"{len(events)} events: " + ", ".join(
        output.paint(f"{n} {s}", "severity", s, colour and n > 0) for s, n in by_severity.items()))


def next_steps(kept: dict | None) -> None:
    if not kept:
        say("the demo server has been removed. To explore the result with the commands below, run "
            "`monitorctl demo --keep`:")
        say("  monitorctl events --severity critical    monitorctl show ID    monitorctl ack ID")
        say("  monitorctl resolve ID --note '...'       monitorctl status     monitorctl events --follow")
        return
    say("")
    say(f"The server keeps running ({kept['scheduling']}). Try:")
    say(f"  export MONITOR_DSN='{kept['dsn']}'")
    say("  monitorctl events --severity critical")
    say("  monitorctl show ID                 # evidence and timeline of one event")
    say("  monitorctl ack ID                  # someone is on it")
    say("  monitorctl resolve ID --note '...'")
    say("  monitorctl status")
    say("  psql \"$MONITOR_DSN\"                # or look at monitor.events yourself")
    if kept["stop"]:
        say("When done, stop and delete it with:")
        say(f"  {kept['stop']}")


def register(app) -> None:
    app.command()(demo)
