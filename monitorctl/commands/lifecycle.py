"""ack and resolve: lifecycle transitions made by people (docs/operations.md, docs/cli.md).

Both go through monitor.acknowledge / monitor.resolve (SECURITY DEFINER, callable by monitor_operator),
which are all-or-nothing over the ids: an unknown id, or resolving a resolved event, changes nothing
and exits 1. The actor recorded in monitor.alert_history is the database user, or --as NAME.
"""

from __future__ import annotations

from typing import List, Optional

import psycopg
import typer

from ..db import query
from ..errors import MonitorError
from .common import installed_connection, say

IDS = typer.Argument(..., metavar="ID...", help="Event ids (the ID column of monitorctl events).")
ACTOR = typer.Option(None, "--as", envvar="MONITOR_ACTOR", metavar="NAME",
                     help="Who to record in the history (default: the database user).")


def _transition(ctx: typer.Context, name: str, params: dict) -> tuple[int, dict[int, str]]:
    ids = sorted(set(params["ids"]))
    params = params | {"ids": ids}
    with installed_connection(ctx, autocommit=False) as conn:
        try:
            before = dict(conn.execute(query("event_statuses"), {"ids": ids}).fetchall())
            changed = conn.execute(query(name), params).fetchone()[0]
            conn.commit()
        except (psycopg.errors.NoDataFound, psycopg.errors.InvalidParameterValue) as exc:
            conn.rollback()
            raise MonitorError(f"{exc.diag.message_primary}; nothing was changed")
    return changed, before


def ack(
    ctx: typer.Context,
    event_ids: List[int] = IDS,
    actor: Optional[str] = ACTOR,
) -> None:
    """Acknowledge events: someone is on it. All or nothing: an unknown or resolved id changes nothing
    and exits 1; an event already acknowledged is left as it is.

    Example: monitorctl ack 42 43 --as alice
    """
    changed, before = _transition(ctx, "acknowledge", {"ids": event_ids, "actor": actor})
    already = sum(1 for s in before.values() if s == "acknowledged")
    tail = f" ({already} already acknowledged)" if already else ""
    say(f"acknowledged {changed} event{'s' if changed != 1 else ''}{tail}")


def resolve(
    ctx: typer.Context,
    event_ids: List[int] = IDS,
    note: Optional[str] = typer.Option(None, "--note", "-m", help="Why it is resolved; kept with the event and "
                                       "in its history."),
    actor: Optional[str] = ACTOR,
) -> None:
    """Resolve events: handled. All or nothing: an unknown id or an event already resolved changes
    nothing and exits 1. A resolved finding is not opened again; a condition that recurs opens a new event.

    Example: monitorctl resolve 42 --note "refunded card C-0042"
    """
    changed, _before = _transition(ctx, "resolve", {"ids": event_ids, "note": note, "actor": actor})
    say(f"resolved {changed} event{'s' if changed != 1 else ''}")


def register(app: typer.Typer) -> None:
    app.command()(ack)
    app.command()(resolve)
