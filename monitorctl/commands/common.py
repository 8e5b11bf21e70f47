"""What commands share: the API object, the output format, progress on stderr.

A command parses its arguments, calls monitorctl.api (one Monitor per command, from ``monitor_of``),
and hands the result to monitorctl.output; it runs no SQL of its own (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import enum

import typer

from ..api import Monitor


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT_OPTION = typer.Option(Format.table, "--format", "-f", envvar="MONITOR_FORMAT",
                             help="Output format: table, json (one document) or csv.")


def root_obj(ctx: typer.Context) -> dict:
    """The options of `monitorctl` itself (--dsn, --debug), from any command or sub-command."""
    return ctx.find_root().obj or {}


def monitor_of(ctx: typer.Context) -> Monitor:
    """The API for the database of --dsn (or MONITOR_DSN, ...), saying its progress on stderr; use it in
    ``with``, which closes its connection."""
    return Monitor(root_obj(ctx).get("dsn"), say=say)


def say(message: str) -> None:
    """Progress and messages go to stderr; data goes to stdout."""
    typer.echo(message, err=True)
