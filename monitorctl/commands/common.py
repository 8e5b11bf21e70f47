"""What commands share: the connection, the output format, progress on stderr."""

from __future__ import annotations

import enum

import typer

from ..db import connect, resolve_dsn
from ..install import ensure_installed


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT_OPTION = typer.Option(Format.table, "--format", "-f", envvar="MONITOR_FORMAT",
                             help="Output format: table, json (one document) or csv.")


def root_obj(ctx: typer.Context) -> dict:
    """The options of `monitorctl` itself (--dsn, --debug), from any command or sub-command."""
    return ctx.find_root().obj or {}


def dsn_of(ctx: typer.Context) -> str:
    return resolve_dsn(root_obj(ctx).get("dsn"))


def installed_connection(ctx: typer.Context, autocommit: bool = True):
    """A connection to an installed, current monitor schema (else exit 3 naming install)."""
    conn = connect(dsn_of(ctx), autocommit=autocommit)
    try:
        ensure_installed(conn)
    except Exception:
        conn.close()
        raise
    return conn


def say(message: str) -> None:
    """Progress and messages go to stderr; data goes to stdout."""
    typer.echo(message, err=True)
