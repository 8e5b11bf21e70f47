"""ack and resolve: lifecycle transitions made by people (docs/operations.md, docs/cli.md).

Both call Monitor.acknowledge / Monitor.resolve (monitorctl.api), which run monitor.acknowledge /
monitor.resolve (SECURITY DEFINER, callable by monitor_operator): all or nothing over the ids, so an
unknown id, or resolving a resolved event, changes nothing and exits 1. The actor recorded in monitor.alert_history is the database user, or --as NAME.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import monitor_of, say

IDS = typer.Argument(..., metavar="ID...", help="Event ids (the ID column of monitorctl events).")
ACTOR = typer.Option(None, "--as", envvar="MONITOR_ACTOR", metavar="NAME",
                     help="Who to record in the history (default: the database user).")


def ack(
    ctx: typer.Context,
    event_ids: List[int] = IDS,
    actor: Optional[str] = ACTOR,
) -> None:
    """Acknowledge events: someone is on it. All or nothing: an unknown or resolved id changes nothing
    and exits 1; an event already acknowledged is left as it is.

    Example: monitorctl ack 42 43 --as alice
    """
    with monitor_of(ctx) as monitor:
        done = monitor.acknowledge(event_ids, actor=actor)
    already = done.already_acknowledged
    tail = f" ({already} already acknowledged)" if already else ""
    say(f"acknowledged {done.changed} event{'s' if done.changed != 1 else ''}{tail}")


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
    with monitor_of(ctx) as monitor:
        done = monitor.resolve(event_ids, note=note, actor=actor)
    say(f"resolved {done.changed} event{'s' if done.changed != 1 else ''}")


def register(app: typer.Typer) -> None:
    app.command()(ack)
    app.command()(resolve)
