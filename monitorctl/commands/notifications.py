"""receivers, routes, silence, notify, deliveries: who is told of events, and the worker that tells
them (docs/notifications.md). Each calls monitorctl.api.Monitor and renders what it returns."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import List, Optional

import typer

from .. import output
from ..errors import MonitorError, UsageError
from ..model import Severity
from ..output import Column
from .common import FORMAT_OPTION, Format, monitor_of, say
from .events import parse_since

receivers_app = typer.Typer(help="Where notifications go: add, list, remove, test.\n\n"
                                 "Example: monitorctl receivers add oncall --type pagerduty --routing-key-env PD_KEY",
                            no_args_is_help=True, rich_markup_mode=None)
routes_app = typer.Typer(help="Which events go to which receiver, tried in order: add, list, remove.\n\n"
                              "Example: monitorctl routes add --receiver oncall --min-severity high",
                         no_args_is_help=True, rich_markup_mode=None)
silence_app = typer.Typer(help="Hold back the notifications of some events for a while: add, list, expire.\n\n"
                               "Example: monitorctl silence add --detector stuck_pending --for 2h "
                               "--comment 'processor maintenance'",
                          no_args_is_help=True, rich_markup_mode=None)


def duration(text: str | None, option: str) -> dt.timedelta | None:
    """'15m', '4h', '0' (none) -> a duration; anything else is refused naming ``option``."""
    if text is None:
        return None
    if text.strip() == "0":
        return dt.timedelta(0)
    length, at = parse_since(text, option)
    if length is None:
        raise UsageError(f"{option}: {text!r} is not a duration such as 15m, 4h or 1d")
    return length


def time_of(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    length, at = parse_since(text, option)
    if at is None:
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 time such as 2026-12-24T02:00Z")
    return at


# -- receivers ----------------------------------------------------------------------------------------

RECEIVER_COLUMNS = [
    Column("name", "NAME"), Column("type", "TYPE"), Column("target", "TARGET", flex=True), Column("secret", "SECRET"),
    Column("circuit", "CIRCUIT"), Column("pending", "PENDING", "int"), Column("failed", "FAILED", "int"),
    Column("dead", "DEAD", "int"), Column("last_sent", "LAST SENT", "age"),
]
RECEIVER_KEYS = ["name", "type", "config", "secret", "circuit", "failures", "open_until", "pending", "failed",
                 "dead", "last_sent"]


def shown_url(url: str | None) -> str | None:
    """A URL without what may carry a token (user, path, query): scheme://host:port/..."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{rest}"


def target(row: dict) -> str:
    c = row["config"]
    if row["type"] == "email":
        return f"{', '.join(c.get('to', []))} via {c.get('host')}:{c.get('port', '')}".rstrip(":")
    return shown_url(c.get("url")) or ("(the secret's URL)" if row["type"] == "slack" else "events.pagerduty.com")


@receivers_app.command("add")
def receivers_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for it: lower-case letters, digits, - and _."),
    type_: str = typer.Option(..., "--type", metavar="webhook|slack|email|pagerduty", help="The kind of receiver."),
    url: Optional[str] = typer.Option(None, "--url", help="webhook: where to POST; slack: the incoming-webhook "
                                      "URL (better given with --secret-env); pagerduty: another Events API URL."),
    secret_env: Optional[str] = typer.Option(None, "--secret-env", metavar="VAR",
                                             help="The environment variable of the worker that holds the secret "
                                                  "(webhook: a whsec_ signing secret; slack: the webhook URL)."),
    secret: Optional[str] = typer.Option(None, "--secret", metavar="VALUE",
                                         help="The secret itself, kept where only monitor's owner reads it "
                                              "(--secret-env is better)."),
    smtp: Optional[str] = typer.Option(None, "--smtp", metavar="HOST:PORT", help="email: the SMTP server."),
    to: Optional[List[str]] = typer.Option(None, "--to", metavar="ADDR", help="email: a recipient (repeatable)."),
    sender: Optional[str] = typer.Option(None, "--from", metavar="ADDR", help="email: the sender."),
    starttls: bool = typer.Option(False, "--starttls", help="email: upgrade to TLS with STARTTLS."),
    tls: bool = typer.Option(False, "--tls", help="email: connect over TLS (port 465 by default)."),
    user: Optional[str] = typer.Option(None, "--user", help="email: log in as this user."),
    password_env: Optional[str] = typer.Option(None, "--password-env", metavar="VAR",
                                               help="email: the environment variable holding the password."),
    routing_key_env: Optional[str] = typer.Option(None, "--routing-key-env", metavar="VAR",
                                                  help="pagerduty: the environment variable holding the "
                                                       "integration's routing key."),
    dashboard_url: Optional[str] = typer.Option(None, "--dashboard-url", metavar="URL",
                                                help="Link each event to URL/events/ID (slack, email, pagerduty)."),
    rate_per_minute: Optional[int] = typer.Option(None, "--rate-per-minute", metavar="N", min=1, max=100000,
                                                  help="Send it at most N notifications a minute (default: no limit)."),
) -> None:
    """Add a receiver, or replace the one of that name. Secrets are best named by an environment
    variable of the worker: they never enter the database, and no command prints them.

    Example: monitorctl receivers add hook --type webhook --url https://ops.example.com/hook --secret-env HOOK_SECRET
    """
    if starttls and tls:
        raise UsageError("--starttls and --tls: choose one")
    with monitor_of(ctx) as monitor:
        monitor.add_receiver(name, type_, url=url, secret_env=secret_env, secret=secret, smtp=smtp, to=to or [],
                             sender=sender, security="starttls" if starttls else "tls" if tls else None, user=user,
                             password_env=password_env, routing_key_env=routing_key_env,
                             dashboard_url=dashboard_url, rate_per_minute=rate_per_minute)
        routes = monitor.routes_configured()
    say(f"receiver {name} added" + ("" if routes else "; add a route to send it anything: "
                                    f"monitorctl routes add --receiver {name}"))


@receivers_app.command("list")
def receivers_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every receiver: its target, where its secret comes from (never the secret), its circuit and
    its deliveries pending, failed and dead.

    Example: monitorctl receivers list
    """
    with monitor_of(ctx) as monitor:
        rows = monitor.receivers()
    for r in rows:
        r["target"] = target(r)
        if r["config"].get("url"):  # a webhook's URL may carry a token in its path or query
            r["config"] = r["config"] | {"url": shown_url(r["config"]["url"])}
    output.render(rows, RECEIVER_COLUMNS, fmt.value, RECEIVER_KEYS, empty="no receivers: monitorctl receivers add")


@receivers_app.command("remove")
def receivers_remove(ctx: typer.Context, name: str = typer.Argument(..., help="The receiver's name.")) -> None:
    """Remove a receiver and its deliveries (a route that uses it must go first).

    Example: monitorctl receivers remove hook
    """
    with monitor_of(ctx) as monitor:
        monitor.remove_receiver(name)
    say(f"receiver {name} removed")


@receivers_app.command("test")
def receivers_test(ctx: typer.Context, name: str = typer.Argument(..., help="The receiver's name.")) -> None:
    """Send a test notification, marked as a test, to a receiver now and say how it went (exit 1 when
    it failed). Run it where the worker runs: it reads the secret from the same environment.

    Example: monitorctl receivers test oncall
    """
    with monitor_of(ctx) as monitor:
        outcome = monitor.test_receiver(name)
    code = f" {outcome.status_code}" if outcome.status_code else ""
    if outcome.ok:
        say(f"test notification sent to {name}:{code} in {outcome.latency_ms:.0f} ms")
        return
    raise MonitorError(f"test notification to {name} failed:{code} {output.printable(outcome.reply)}")


# -- routes -------------------------------------------------------------------------------------------

ROUTE_COLUMNS = [
    Column("route_id", "ID", "int"), Column("position", "POS", "int"), Column("receiver", "RECEIVER"),
    Column("min_severity", "MIN SEVERITY"), Column("detectors_shown", "DETECTORS"), Column("subject_glob", "SUBJECT"),
    Column("repeat", "REPEAT"), Column("send_resolved", "RESOLVED"), Column("continue_after", "CONTINUE"),
    Column("escalation", "ESCALATION", flex=True),
]
ROUTE_KEYS = ["route_id", "position", "receiver", "min_severity", "detectors", "subject_glob", "repeat",
              "send_resolved", "continue_after", "escalate_after", "escalate_to"]


@routes_app.command("add")
def routes_add(
    ctx: typer.Context,
    receiver: str = typer.Option(..., "--receiver", metavar="NAME", help="Where the matching events go."),
    min_severity: Severity = typer.Option(Severity.low, "--min-severity", case_sensitive=False,
                                          help="Events at least this severe."),
    detector: Optional[List[str]] = typer.Option(None, "--detector", metavar="D",
                                                 help="Only events of this detector (repeatable; default: all)."),
    subject: Optional[str] = typer.Option(None, "--subject", metavar="GLOB",
                                          help="Only subjects matching this pattern (* and ?)."),
    repeat: Optional[str] = typer.Option(None, "--repeat", metavar="DURATION",
                                         help="Send again this often while open and not acknowledged (0: never; "
                                              "default: 4h for critical events, never for others)."),
    no_resolved: bool = typer.Option(False, "--no-resolved", help="Do not send resolutions on this route."),
    continue_: bool = typer.Option(False, "--continue", help="Try the routes after this one too."),
    escalate_after: Optional[str] = typer.Option(None, "--escalate-after", metavar="DURATION",
                                                 help="An event still open and not acknowledged this long after "
                                                      "it opened goes to --escalate-to."),
    escalate_to: Optional[str] = typer.Option(None, "--escalate-to", metavar="NAME", help="The escalation's receiver."),
) -> None:
    """Add a route after the others. Routes are tried in order; the first that matches an event takes
    its transitions (opened, severity changed, acknowledged, resolved), unless it has --continue.

    Example: monitorctl routes add --receiver oncall --min-severity critical --escalate-after 15m --escalate-to lead
    """
    with monitor_of(ctx) as monitor:
        route_id = monitor.add_route(receiver, min_severity.value, detector or [], subject,
                                     duration(repeat, "--repeat"), not no_resolved, continue_,
                                     duration(escalate_after, "--escalate-after"), escalate_to)
    say(f"route {route_id} added")


@routes_app.command("list")
def routes_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every route, in the order they are tried.

    Example: monitorctl routes list
    """
    with monitor_of(ctx) as monitor:
        rows = monitor.routes()
    for r in rows:
        r["detectors_shown"] = ", ".join(r["detectors"]) if r["detectors"] else "all"
        r["escalation"] = (f"after {output.duration(r['escalate_after'])} to {r['escalate_to']}"
                           if r["escalate_to"] else "")
    output.render(rows, ROUTE_COLUMNS, fmt.value, ROUTE_KEYS,
                  empty="no routes: nothing is sent (monitorctl routes add --receiver NAME)")


@routes_app.command("remove")
def routes_remove(ctx: typer.Context, route_id: int = typer.Argument(..., metavar="ID", help="The route's id.")) -> None:
    """Remove a route (deliveries already made stay).

    Example: monitorctl routes remove 3
    """
    with monitor_of(ctx) as monitor:
        monitor.remove_route(route_id)
    say(f"route {route_id} removed")


# -- silences -----------------------------------------------------------------------------------------

SILENCE_COLUMNS = [
    Column("silence_id", "ID", "int"), Column("state", "STATE"), Column("detector", "DETECTOR"),
    Column("subject_glob", "SUBJECT"), Column("starts_at", "STARTS", "time"), Column("ends_at", "ENDS", "time"),
    Column("created_by", "BY"), Column("comment", "COMMENT", flex=True),
]


@silence_app.command("add")
def silence_add(
    ctx: typer.Context,
    comment: str = typer.Option(..., "--comment", help="Why: for the people who will wonder."),
    detector: Optional[str] = typer.Option(None, "--detector", metavar="D", help="Only this detector's events."),
    subject: Optional[str] = typer.Option(None, "--subject", metavar="GLOB", help="Only subjects matching (* and ?)."),
    for_: Optional[str] = typer.Option(None, "--for", metavar="DURATION", help="How long, such as 2h."),
    until: Optional[str] = typer.Option(None, "--until", metavar="TIME", help="Until this ISO 8601 time."),
    starts: Optional[str] = typer.Option(None, "--starts", metavar="TIME",
                                         help="From this ISO 8601 time (a maintenance window; default now)."),
) -> None:
    """Silence events: their transitions are recorded as suppressed (monitorctl show lists them), not
    sent. When it ends, an event still open and due for a repeat is sent.

    Example: monitorctl silence add --detector stuck_pending --subject 'C-10*' --for 2h --comment "maintenance"
    """
    with monitor_of(ctx) as monitor:
        silence_id = monitor.add_silence(comment, until=time_of(until, "--until"), duration=duration(for_, "--for"),
                                         starts=time_of(starts, "--starts"), detector=detector, subject=subject)
    say(f"silence {silence_id} added")


@silence_app.command("list")
def silence_list(ctx: typer.Context, all_: bool = typer.Option(False, "--all", help="Ended silences too."),
                 fmt: Format = FORMAT_OPTION) -> None:
    """Active and coming silences.

    Example: monitorctl silence list
    """
    with monitor_of(ctx) as monitor:
        rows = monitor.silences(all=all_)
    output.render(rows, SILENCE_COLUMNS, fmt.value, empty="no silences")


@silence_app.command("expire")
def silence_expire(ctx: typer.Context,
                   silence_id: int = typer.Argument(..., metavar="ID", help="The silence's id.")) -> None:
    """End a silence now (one that has not started is removed).

    Example: monitorctl silence expire 4
    """
    with monitor_of(ctx) as monitor:
        monitor.expire_silence(silence_id)
    say(f"silence {silence_id} expired")


# -- the worker and the outbox -------------------------------------------------------------------------

def notify(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Send what is due now, then exit (for cron or CI)."),
    batch: int = typer.Option(100, "--batch", min=1, max=10000, help="Deliveries claimed at a time (sent on 8 "
                              "threads; a batch that could outlast its lease is cut short)."),
    lease: int = typer.Option(60, "--lease", min=5, max=3600, metavar="SECONDS",
                              help="How long a claimed delivery is this worker's: a worker that dies leaves it "
                                   "to others after this."),
    name: Optional[str] = typer.Option(None, "--name", help="This worker's name in the attempts (default host:pid)."),
) -> None:
    """The delivery worker: sends the outbox's deliveries as they come (woken by NOTIFY within a second,
    polling every 5 s as a fallback), retries failures with backoff, and runs until SIGTERM or Ctrl-C
    (the batch in hand is finished first). Run it as monitor's owner, with the receivers' secrets in
    its environment; run several for availability.

    Example: monitorctl notify
    """
    with monitor_of(ctx) as monitor:
        if not monitor.routes_configured():
            say("no routes: nothing will be sent until one is added (monitorctl routes add --receiver NAME)")
        counts = monitor.notify(once=once, name=name, batch=batch, lease=float(lease))
    say(f"notify: {counts['sent']} sent, {counts['failed']} to retry, {counts['dead']} given up")


DELIVERY_COLUMNS = [
    Column("delivery_id", "ID", "int"), Column("status", "STATUS"), Column("transition", "TRANSITION"),
    Column("receiver", "RECEIVER"), Column("event_id", "EVENT", "int"), Column("detector", "DETECTOR"),
    Column("attempts", "ATTEMPTS", "int"), Column("created_at", "CREATED", "age"),
    Column("last_error", "LAST ERROR", flex=True),
]

deliveries_app = typer.Typer(help="The outbox: what was sent, what waits, what was given up; retry.\n\n"
                                  "Example: monitorctl deliveries --status dead",
                             invoke_without_command=True, rich_markup_mode=None)


@deliveries_app.callback()
def deliveries(
    ctx: typer.Context,
    status: Optional[str] = typer.Option(None, "--status", metavar="pending|failed|sent|dead|suppressed|digested",
                                         help="Only deliveries in this state (failed: waiting for a retry)."),
    event: Optional[int] = typer.Option(None, "--event", metavar="ID", help="Only one event's (and its digest)."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1_000_000, help="At most this many, newest first."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List deliveries, newest first; `deliveries retry ID` sends a dead one again.

    Example: monitorctl deliveries --status dead
    """
    if ctx.invoked_subcommand is not None:
        return
    with monitor_of(ctx) as monitor:
        rows = monitor.deliveries(status=status, event_id=event, limit=limit)
    for r in rows:
        r["last_error"] = r["last_error"] and output.printable(r["last_error"])
    output.render(rows, DELIVERY_COLUMNS, fmt.value, empty="no deliveries match")


@deliveries_app.command("retry")
def deliveries_retry(ctx: typer.Context,
                     delivery_id: int = typer.Argument(..., metavar="ID", help="A dead or failed delivery.")) -> None:
    """Send a dead (or failed) delivery again at the worker's next look.

    Example: monitorctl deliveries retry 812
    """
    with monitor_of(ctx) as monitor:
        monitor.retry_delivery(delivery_id)
    say(f"delivery {delivery_id} is due again")


def register(app: typer.Typer) -> None:
    app.add_typer(receivers_app, name="receivers")
    app.add_typer(routes_app, name="routes")
    app.add_typer(silence_app, name="silence")
    app.command()(notify)
    app.add_typer(deliveries_app, name="deliveries")
