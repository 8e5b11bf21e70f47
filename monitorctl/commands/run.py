"""monitorctl run: detectors now, synchronously, each in its own transaction with its timeout."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from .. import output
from ..api import RunSlice
from ..errors import MonitorError, UsageError
from .common import FORMAT_OPTION, Format, monitor_of, say
from .events import parse_since

COLUMNS = [
    output.Column("detector", "DETECTOR"),
    output.Column("status", "STATUS"),
    output.Column("events_opened", "NEW", "int"),
    output.Column("events_updated", "UPDATED", "int"),
    output.Column("events_resolved", "RESOLVED", "int"),
    output.Column("duration", "DURATION", "duration"),
    output.Column("error", "ERROR", flex=True),
]


def run(
    ctx: typer.Context,
    detectors: Optional[List[str]] = typer.Argument(None, metavar="[DETECTOR]...",
                                                    help="Detectors to run (default: every enabled one)."),
    since: Optional[str] = typer.Option(None, "--since", help="Re-examine rows this far back (30m, 2h, 7d) or "
                                        "since an ISO 8601 time: a backfill or rescan; events are not duplicated."),
    slice_: str = typer.Option("1d", "--slice", metavar="DURATION",
                               help="With --since: finding detectors examine the window in slices this long "
                                    "(oldest first; at most 500 of them), each in its own transaction and "
                                    "timeout, with progress."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Run detectors now, each in its own transaction with its `timeout` parameter as statement_timeout,
    and print per detector: new, updated and resolved events, duration, status. A backfill (--since
    longer than --slice) runs each finding detector slice by slice, so a month of rows finishes within
    the timeout; Ctrl-C keeps the slices done, and running it again adds no event twice.

    Example: monitorctl run failed_debit duplicate_scan --since 7d
    """
    since_iv, since_ts = parse_since(since)
    slice_iv, _ = parse_since(slice_, "--slice")
    if slice_iv is None:
        raise UsageError(f"--slice: {slice_!r} must be a duration of at least a minute, such as 6h or 1d")
    current = {}
    tty = sys.stderr.isatty()

    def progress(at: RunSlice) -> None:
        current["name"] = at.detector
        label = f"[{at.number}/{at.of}] {at.detector}"
        step = max(1, at.slices // 10)
        if at.slices == 1:
            say(f"{label} ...")
        elif tty or at.slice % step == 0 or at.slice == at.slices:
            until = f"{at.until:%Y-%m-%d %H:%M}" if at.until else "now"
            message = f"{label}: slice {at.slice}/{at.slices} ({100 * at.slice // at.slices}%) " \
                      f"{at.since:%Y-%m-%d %H:%M} .. {until}"
            if tty:
                sys.stderr.write("\r" + message.ljust(78) + ("\n" if at.slice == at.slices else ""))
                sys.stderr.flush()
            else:
                say(message)

    with monitor_of(ctx) as monitor:
        try:
            rows = monitor.run(detectors, since=since_ts or since_iv, slice=slice_iv, progress=progress)
        except KeyboardInterrupt:
            say(f"interrupted in {current.get('name')}: the detectors and slices before it are done; run the same "
                "command again to finish (what was done is examined again, no event is added twice)")
            raise typer.Exit(130)
    output.render(rows, COLUMNS, fmt.value, json_keys=[
        "detector", "status", "events_opened", "events_updated", "events_resolved", "rows_examined",
        "started_at", "finished_at", "duration", "since", "error", "slices"])
    failed = [r["detector"] for r in rows if r["status"] == "error"]
    if failed:
        raise MonitorError(f"{len(failed)} detector(s) failed: {', '.join(failed)} (see `monitorctl status`)")


def register(app: typer.Typer) -> None:
    app.command()(run)
