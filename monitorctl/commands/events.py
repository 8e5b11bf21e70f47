"""events (list, filter, follow) and show (one event in full, with its timeline)."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
from typing import List, Optional

import typer

from .. import output
from ..errors import UsageError
from ..model import Severity, StatusFilter
from ..output import Column
from .common import FORMAT_OPTION, Format, monitor_of, say

# The columns of monitor.events that JSON and CSV carry (docs/operations.md).
EVENT_KEYS = ["event_id", "detector", "kind", "severity", "status", "subject", "dedup_key", "txn_id", "amount",
              "summary", "evidence", "first_seen", "last_seen", "occurrences", "acknowledged_at",
              "acknowledged_by", "resolved_at", "resolved_by", "resolution_note"]
EVENT_COLUMNS = [
    Column("event_id", "ID", "int"),
    Column("severity", "SEVERITY", "severity"),
    Column("status", "STATUS", "status"),
    Column("detector", "DETECTOR"),
    Column("subject", "SUBJECT"),
    Column("amount", "AMOUNT", "amount"),
    Column("occurrences", "RUNS", "int"),
    Column("last_seen", "LAST SEEN", "age"),
    Column("summary", "SUMMARY", flex=True),
]
HISTORY_KEYS = ["history_id", "event_id", "created_at", "transition", "actor", "db_user", "note", "detector", "severity",
                "subject", "summary"]

UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
         "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
         "h": 3600, "hour": 3600, "hours": 3600,
         "d": 86400, "day": 86400, "days": 86400,
         "w": 604800, "week": 604800, "weeks": 604800}
SINCE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
MAX_SINCE_DAYS = 36500  # 100 years: a longer duration overflows Python's and PostgreSQL's times
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000_000_000


def parse_since(text: str | None, option: str = "--since") -> tuple[dt.timedelta | None, dt.datetime | None]:
    """'2h', '30m', '7d', '90 seconds' -> a duration; an ISO 8601 time -> that time."""
    if text is None:
        return None, None
    m = SINCE.match(text.lower())
    if m and m.group(2) in UNITS:
        digits = m.group(1).lstrip("0") or "0"
        seconds = int(digits) * UNITS[m.group(2)] if len(digits) <= 20 else None  # no 10,000-digit ints
        if seconds is None or seconds > MAX_SINCE_DAYS * 86400:
            raise UsageError(f"{option}: {text.strip()!r} is too long: a duration runs from 0 to "
                             f"{MAX_SINCE_DAYS}d (100 years)")
        return dt.timedelta(seconds=seconds), None
    try:
        ts = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        ts = ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)
        ts.astimezone(dt.timezone.utc)  # year 1 at +05:00 is before year 1 in UTC: OverflowError
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a duration such as 30m, 2h or 7d (units s, m, h, d, w), "
                         "nor an ISO 8601 time")
    except OverflowError:
        raise UsageError(f"{option}: {text!r} is out of range: a time runs from year 1 to 9999 in UTC")
    return None, ts


def events(
    ctx: typer.Context,
    severity: Optional[List[Severity]] = typer.Option(
        None, "--severity", "-s", case_sensitive=False,
        help="Only this severity; repeat for several (--severity critical --severity high)."),
    status: StatusFilter = typer.Option(StatusFilter.active, "--status", case_sensitive=False,
                                  help="open, acknowledged, resolved, active (open + acknowledged) or all."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Only events of this detector."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Only events about this subject (an account "
                                          "id, 'system', or a detector name)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only events seen within this long (30m, 2h, 7d) "
                                        "or since this ISO 8601 time; filters on last_seen."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", "-n", min=0, max=MAX_LIMIT, help="At most this many "
                              "events, newest first (0: no limit)."),
    fail_on: Optional[Severity] = typer.Option(
        None, "--fail-on", case_sensitive=False, envvar="MONITOR_FAIL_ON",
        help="Exit 1 when an active event of this severity or a more severe one exists (with --detector and "
             "--subject, among those); for deploy gates and checks."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep running and print new and changed events as "
                                "they happen (JSON Lines with --format json); Ctrl-C stops."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, envvar="MONITOR_FOLLOW_INTERVAL",
                                   help="With --follow: seconds between polls when no notification arrives."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List events, newest last_seen first; by default the active ones (open and acknowledged).

    Example: monitorctl events --severity critical --severity high --since 2h
    """
    if follow and fail_on is not None:
        raise UsageError("--fail-on and --follow do not go together: --fail-on needs the command to end")
    since_iv, since_ts = parse_since(since)
    which = {"status": status.value, "severities": [s.value for s in severity] if severity else None,
             "detector": detector, "subject": subject, "since": since_ts or since_iv, "limit": limit}
    with monitor_of(ctx) as monitor:
        if follow:
            follow_events(monitor.follow(**which, interval=interval, on_ready=lambda: say(
                "following events (Ctrl-C to stop)")), fmt)
            return
        with monitor.events(**which) as rows:
            shown = output.render(rows, EVENT_COLUMNS, fmt.value, EVENT_KEYS, empty="no events match")
        if fmt is Format.table and limit and shown == limit:
            say(f"(the newest {limit} events; --limit 0 shows all)")
        if fail_on is not None:
            monitor.fail_on(fail_on.value, detector, subject)


# -- follow ----------------------------------------------------------------------------------------

FOLLOW_COLUMNS = [Column("change", "CHANGE")] + [c for c in EVENT_COLUMNS if c.key != "last_seen"]
FOLLOW_WIDTHS = {"change": 25, "event_id": 6, "severity": 8, "status": 12, "detector": 20, "subject": 14,
                 "amount": 12, "occurrences": 4}


class _Stop(Exception):
    pass


def follow_events(changes, fmt: Format) -> None:
    """Print each (change, event) of Monitor.follow as it comes, until Ctrl-C or SIGTERM."""
    printer = _Printer(fmt)

    def stop(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for change, row in changes:
            printer.row(row, change)
    except (KeyboardInterrupt, _Stop):
        say("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Printer:
    def __init__(self, fmt: Format):
        self.fmt = fmt
        self.header = False
        self.colour = output.use_colour()
        width = output.terminal_width()
        fixed = sum(FOLLOW_WIDTHS.values()) + 2 * (len(FOLLOW_COLUMNS) - 1)
        self.summary_width = max(20, width - fixed) if width else None

    def row(self, row: dict, change: str) -> None:
        if self.fmt is Format.json:
            output.emit(output.dumps({"change": change} | {k: row.get(k) for k in EVENT_KEYS}, indent=None))
            return
        if self.fmt is Format.csv:
            if not self.header:
                output.emit(output.csv_text([], ["change"] + EVENT_KEYS))
                self.header = True
            output.emit(output.csv_text([{"change": change} | row], ["change"] + EVENT_KEYS).split("\n", 1)[1])
            return
        cells = {c.key: output.cell(row.get(c.key), c.kind) for c in FOLLOW_COLUMNS}
        cells["change"] = f"{output.clock(output.now_utc())[11:19]} {change}"
        if not self.header:
            output.emit(self._line({c.key: c.header for c in FOLLOW_COLUMNS}, None))
            self.header = True
        output.emit(self._line(cells, row))

    def _line(self, cells: dict, row: dict | None) -> str:
        parts = []
        for c in FOLLOW_COLUMNS:
            text, width = cells[c.key], FOLLOW_WIDTHS.get(c.key)
            if c.key == "summary" and self.summary_width and row is not None:
                width = self.summary_width
            if width:
                text = text[:width - 1] + "…" if len(text) > width else text
                text = text.rjust(width) if c.right else text.ljust(width)
            parts.append(output.paint(text, c.kind, row.get(c.key), self.colour) if row else text)
        return "  ".join(parts).rstrip()


# -- show ------------------------------------------------------------------------------------------

def show(
    ctx: typer.Context,
    event_id: int = typer.Argument(..., metavar="ID", help="The event's id (the ID column of monitorctl events)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """One event in full: its summary, its evidence (pretty-printed) and its timeline from
    monitor.alert_history. The history of a pruned event is still shown.

    Example: monitorctl show 42
    """
    with monitor_of(ctx) as monitor:
        event, history = monitor.event(event_id)
        attempts = monitor.event_attempts(event_id)
    output.document({"event": event and {k: event[k] for k in EVENT_KEYS}, "history": history,
                     "notifications": attempts}, fmt.value,
                    lambda: describe(event, history, event_id, output.use_colour(), attempts), history, HISTORY_KEYS)


def describe(event: dict | None, history: list[dict], event_id: int, colour: bool,
             attempts: list[dict] | None = None) -> str:
    def shown(row: dict) -> dict:  # text from the database, control characters escaped
        return {k: output.printable(v) if isinstance(v, str) else v for k, v in row.items()}

    event = event and shown(event)
    history = [shown(h) for h in history]
    lines = []
    if event is None:
        last = history[-1]
        lines.append(f"Event {event_id} was pruned; its history remains ({last['detector']}, {last['severity']}, "
                     f"{last['subject']}): {last['summary']}")
    else:
        e = event
        lines.append(f"Event {e['event_id']}  {output.paint(e['severity'], 'severity', e['severity'], colour)}  "
                     f"{output.paint(e['status'], 'status', e['status'], colour)}")
        lines.append(f"  {e['summary']}")
        lines.append("")
        fields = [
            ("detector", f"{e['detector']} ({e['kind']})"),
            ("subject", e["subject"]),
            ("dedup key", e["dedup_key"]),
            ("transaction", e["txn_id"]),
            ("amount", output.amount(e["amount"]) if e["amount"] is not None else None),
            ("first seen", f"{output.clock(e['first_seen'])} ({output.age(e['first_seen'])})"),
            ("last seen", f"{output.clock(e['last_seen'])} ({output.age(e['last_seen'])}), "
                          f"seen by {e['occurrences']} run{'s' if e['occurrences'] != 1 else ''}"),
            ("acknowledged", e["acknowledged_at"]
             and f"{output.clock(e['acknowledged_at'])} by {e['acknowledged_by']}"),
            ("resolved", e["resolved_at"] and f"{output.clock(e['resolved_at'])} by {e['resolved_by']}"),
            ("note", e["resolution_note"]),
        ]
        for label, value in fields:
            if value not in (None, ""):
                lines.append(f"  {label + ':':14}{value}")
        lines.append("")
        lines.append("Evidence:")
        text = json.dumps(output.jsonable(e["evidence"]), indent=2, ensure_ascii=False, sort_keys=True)
        lines.extend("  " + line for line in text.splitlines())
    lines.append("")
    lines.append("Timeline:")
    for h in history:
        note = f"  ({h['note']})" if h["note"] else ""
        who = h["actor"]
        if h.get("db_user") not in (None, who) and who != "auto":  # the name the caller gave, and who they are
            who += f" (database user {h['db_user']})"
        lines.append(f"  {output.clock(h['created_at'])}  {h['transition']:16} {who}{note}")
    if not history:
        lines.append("  (no history: it was pruned)")
    if attempts:
        lines.append("")
        lines.append("Notifications:")
        for a in (shown(a) for a in attempts):
            head = f"  delivery {a['delivery_id']}  {a['transition']:14} to {a['receiver']:12} {a['status']}"
            if a["started_at"] is None:
                lines.append(head)
                continue
            code = f" {a['status_code']}" if a["status_code"] is not None else ""
            lines.append(f"{head}: {output.clock(a['started_at'])} {'ok' if a['ok'] else 'failed'}{code} "
                         f"in {float(a['latency_ms']):.0f} ms" + ("" if a["ok"] else f" ({a['reply']})"))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command()(events)
    app.command()(show)
