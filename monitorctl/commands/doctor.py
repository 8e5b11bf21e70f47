"""monitorctl doctor: the indexes the incremental detectors need on the mapped tables."""

from __future__ import annotations

import typer

from .. import output
from ..doctor import index_advice
from ..errors import MonitorError
from ..install import stored_mapping
from .common import FORMAT_OPTION, Format, installed_connection

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
    with installed_connection(ctx) as conn:
        advice = index_advice(conn, stored_mapping(conn))
    rows = [{"status": a.status, "relation": a.relation, "columns": ", ".join(a.columns),
             "needed_by": a.needed_by, "suggestion": a.suggestion} for a in advice]
    output.render(rows, COLUMNS, fmt.value)
    missing = [a for a in advice if a.status == "missing"]
    if missing:
        raise MonitorError(f"{len(missing)} index(es) missing: detectors would scan whole tables "
                           "(see SUGGESTION)")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
