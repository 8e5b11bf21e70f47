"""Connections: which database (README.md, "Connecting"), how to reach it, and the named queries.

Every statement monitorctl's Python runs is a named query of monitorctl/queries.sql, run through
``value``, ``row``, ``rows`` or ``stream`` (rows as dicts, one way)."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from urllib.parse import urlencode

from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from .errors import DatabaseUnavailable, MonitorError, UsageError


def resolve_dsn(dsn: str | None) -> str:
    """--dsn, else MONITOR_DSN, else DATABASE_URL, else '' (libpq's PG* variables)."""
    for value in (dsn, os.environ.get("MONITOR_DSN"), os.environ.get("DATABASE_URL")):
        if value:
            return value
    return ""


def params(dsn: str) -> dict:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"invalid connection string: {str(exc).splitlines()[0]}")


def describe(dsn: str) -> str:
    """The server and database a DSN points at, for messages (never the password)."""
    p = params(dsn)
    host = p.get("host") or os.environ.get("PGHOST") or "localhost (unix socket)"
    port = p.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = p.get("dbname") or os.environ.get("PGDATABASE") or p.get("user") or os.environ.get("PGUSER") or ""
    return f"{host}:{port}/{dbname}" if dbname else f"{host}:{port}"


def connect(dsn: str, autocommit: bool = True, **kwargs) -> psycopg.Connection:
    """Connect, or raise DatabaseUnavailable naming the server tried."""
    p = params(dsn)
    p.setdefault("connect_timeout", os.environ.get("PGCONNECT_TIMEOUT", "10"))
    p.setdefault("application_name", "monitorctl")
    try:
        conn = psycopg.connect(make_conninfo("", **p), autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        reason = re.sub(r"^(?:connection (?:is bad|failed): )?connection to server .*? failed: ", "", reason)
        raise DatabaseUnavailable(f"cannot connect to {describe(dsn)}: {reason}")
    pin_search_path(conn)
    return conn


def pin_search_path(conn: psycopg.Connection) -> None:
    """Resolve every name of this session in pg_catalog only (pg_temp last, for nothing).

    Whatever a role that can CREATE in public (or in "$user") plants there, an operator such as
    public.#>>(jsonb, text) or a function with a closer signature, is never used by monitorctl's own
    queries, which name monitor's objects with their schema. The role's own search_path is kept as
    ``conn.user_schemas`` for a mapping that names a relation without its schema."""
    row = conn.execute(query("pin_search_path")).fetchone()
    if not conn.autocommit:
        conn.commit()
    conn.user_schemas = row[0]


def with_dbname(dsn: str, dbname: str) -> str:
    p = params(dsn)
    p["dbname"] = dbname
    return make_conninfo("", **p)


def yoyo_uri(dsn: str) -> str:
    """A yoyo URI for the same connection, with yoyo's own tables in schema monitor.

    yoyo passes every query argument to psycopg.connect, so keyword DSNs, unix-socket hosts and
    libpq defaults all survive the trip.
    """
    p = {k: v for k, v in params(dsn).items() if v is not None}
    p.setdefault("application_name", "monitorctl")
    p["schema"] = "monitor"
    return "postgresql+psycopg:///?" + urlencode(p)


@lru_cache(maxsize=1)
def _queries() -> dict[str, str]:
    text = (resources.files("monitorctl") / "queries.sql").read_text()
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"^--\s*name:\s*(\S+)", line)
        if m:
            name = m.group(1)
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return {k: v.strip() for k, v in out.items()}


def query(name: str) -> str:
    """A named query from monitorctl/queries.sql."""
    try:
        return _queries()[name]
    except KeyError:
        raise MonitorError(f"internal: no query named {name!r}")


def value(conn, name: str, params=None):
    """The first column of the first row of a named query (None when it returns no row)."""
    found = conn.execute(query(name), params).fetchone()
    return found[0] if found else None


def row(conn, name: str, params=None) -> dict | None:
    """The first row of a named query as a dict, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query(name), params).fetchone()


def rows(conn, name: str, params=None) -> list[dict]:
    """Every row of a named query, as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query(name), params).fetchall()


def run(conn, name: str, params=None) -> int:
    """Run a named statement; the number of rows it touched."""
    return conn.execute(query(name), params).rowcount


def stream(conn, name: str, params=None, batch: int = 1000) -> Iterator[dict]:
    """The rows of a named query from a server-side cursor, ``batch`` at a time, as dicts: memory stays
    flat whatever their number. Iterate it inside a transaction."""
    with conn.cursor(name=f"monitorctl_{name}", row_factory=dict_row) as cur:
        cur.itersize = batch
        cur.execute(query(name), params)
        yield from cur
