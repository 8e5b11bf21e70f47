"""monitorctl doctor: the indexes the incremental detectors need on the mapped tables."""

from __future__ import annotations

import typer

from .. import output
from ..errors import MonitorError
from .common import FORMAT_OPTION, Format, monitor_of

COLUMNS = [
    output.Column("status", "STATUS"),
    output.Column("relation", "RELATION"),
    output.Column("columns", "COLUMNS"),
    output.Column("needed_by", "NEEDED BY", flex=True),
    output.Column("suggestion", "SUGGESTION"),
]


def doctor(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Check that the tables behind the source views have the indexes the detectors read through,
    so that a run costs O(new rows) instead of a scan of the whole table. Exits 1 when one is missing.

    Example: monitorctl doctor
    """
    with monitor_of(ctx) as monitor:
        rows = monitor.doctor()
    output.render(rows, COLUMNS, fmt.value)
    missing = [r for r in rows if r["status"] == "missing"]
    if missing:
        raise MonitorError(f"{len(missing)} index(es) missing: detectors would scan whole tables "
                           "(see SUGGESTION)")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
