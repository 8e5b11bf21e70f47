"""The source mapping (README.md, "Install into your database"): which user tables and columns feed the three source views.

A mapping is a plain dict, as read from the TOML file::

    {"sources": {"transactions": {"relation": "public.t", "columns": {"txn_id": "id", ...}}, ...},
     "detectors": {"duplicate_scan": {"window": "3 seconds"}}}

Everything is checked before anything in the database changes; a problem is reported as one line
naming the key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from psycopg import sql

from .db import query
from .errors import UsageError

# logical relation -> column -> required?
COLUMNS: dict[str, dict[str, bool]] = {
    "accounts": {"account_id": True, "balance": True, "opening_balance": False, "updated_at": False},
    "transactions": {
        "txn_id": True, "account_id": True, "amount": True, "status": True,
        "balance_before": False, "balance_after": False, "device_id": False,
        "created_at": True, "updated_at": False,
    },
    "scans": {"scan_id": True, "account_id": True, "device_id": False, "scanned_at": True},
}
DEFAULT_RELATIONS = {"accounts": "ledger.accounts", "transactions": "ledger.transactions", "scans": "ledger.scans"}
# the type each logical column takes in the source views (sql/010_sources.sql.j2 casts to it)
TYPES = {"account_id": "text", "balance": "numeric", "opening_balance": "numeric", "updated_at": "timestamptz",
         "txn_id": "text", "amount": "numeric", "status": "text", "balance_before": "numeric",
         "balance_after": "numeric", "device_id": "text", "created_at": "timestamptz", "scan_id": "text",
         "scanned_at": "timestamptz"}
PROBE_ROWS = 1000  # rows each column's cast is tried on at install
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def ledger_mapping() -> dict:
    """The mapping onto the reference ledger (`install --with-ledger`)."""
    return {"sources": {
        rel: {"relation": DEFAULT_RELATIONS[rel], "columns": {col: col for col in cols}}
        for rel, cols in COLUMNS.items()
    }}


def load(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist")
    except IsADirectoryError:
        raise UsageError(f"config file {path} is a directory, not a TOML file")
    except OSError as exc:  # unreadable (permissions), not a regular path, ...
        raise UsageError(f"config file {path} cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: it is not UTF-8 text "
                         f"(byte {exc.object[exc.start]:#04x} at offset {exc.start})")
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}")
    check_shape(data)
    return data


def check_shape(data: dict) -> None:
    """Refuse unknown keys and malformed values (no database needed)."""
    for key in data:
        if key not in ("sources", "detectors"):
            raise UsageError(f"config: unknown key '{key}' (expected 'sources' or 'detectors')")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise UsageError("config: 'sources' must be a table")
    for rel, spec in sources.items():
        where = f"sources.{rel}"
        if rel not in COLUMNS:
            raise UsageError(f"config: unknown key '{where}' (expected one of {', '.join(COLUMNS)})")
        if not isinstance(spec, dict):
            raise UsageError(f"config: '{where}' must be a table")
        for key in spec:
            if key not in ("relation", "columns"):
                raise UsageError(f"config: unknown key '{where}.{key}' (expected 'relation' or 'columns')")
        relation = spec.get("relation")
        if not isinstance(relation, str):
            raise UsageError(f"config: '{where}.relation' is missing (a schema-qualified table or view)")
        parts = relation.split(".")
        if len(parts) > 2 or not all(IDENT.match(p) for p in parts):
            raise UsageError(f"config: '{where}.relation' = {relation!r} is not a plain (optionally "
                             "schema-qualified) name")
        columns = spec.get("columns", {})
        if not isinstance(columns, dict):
            raise UsageError(f"config: '{where}.columns' must be a table")
        for col, value in columns.items():
            ckey = f"{where}.columns.{col}"
            if col not in COLUMNS[rel]:
                raise UsageError(f"config: unknown key '{ckey}' (expected one of {', '.join(COLUMNS[rel])})")
            if isinstance(value, str):
                if not IDENT.match(value):
                    raise UsageError(f"config: '{ckey}' = {value!r} is not a plain column name "
                                     "(use {{ sql = \"...\" }} for an expression)")
            elif isinstance(value, dict) and set(value) == {"sql"} and isinstance(value["sql"], str):
                if not value["sql"].strip():
                    raise UsageError(f"config: '{ckey}' has an empty sql expression")
            else:
                raise UsageError(f"config: '{ckey}' must be a column name or {{ sql = \"...\" }}")
        for col, required in COLUMNS[rel].items():
            if required and col not in columns:
                raise UsageError(f"config: '{where}.columns.{col}' is missing (required)")
    missing = [rel for rel in COLUMNS if rel not in sources]
    if data.get("sources") is not None and missing:
        raise UsageError(f"config: 'sources.{missing[0]}' is missing")
    detectors = data.get("detectors", {})
    if not isinstance(detectors, dict) or not all(isinstance(v, dict) for v in detectors.values()):
        raise UsageError("config: 'detectors' must hold one table per detector, e.g. [detectors.duplicate_scan]")


def find_relation(conn, relation: str) -> tuple[int, str, bool] | None:
    """The relation a mapping names: (oid, its schema-qualified quoted name, whether it stores rows).

    Read from the catalogs, which need no privilege on the relation's schema (doctor runs as
    monitor_reader). A plain name is looked up in the connecting role's own search_path, as it was
    before monitorctl pinned the session's (db.connect)."""
    parts = relation.split(".")
    schemas = parts[:-1] or user_schemas(conn)
    return conn.execute(query("find_relation"), {"schemas": schemas, "name": parts[-1]}).fetchone()


def user_schemas(conn) -> list[str]:
    """The schemas a plain name is looked up in: those db.connect kept, or (a connection made elsewhere)
    the session's own."""
    schemas = getattr(conn, "user_schemas", None)
    if schemas is None:
        schemas = conn.execute(query("current_schemas")).fetchone()[0]
    return schemas


def check_database(conn, mapping: dict) -> None:
    """Every relation and named column exists, and every sql expression evaluates.

    An expression is checked in a transaction that is always rolled back, as one statement of the
    extended protocol (which refuses a second statement): a refused mapping changes nothing, whatever
    its expressions hold."""
    for rel, spec in mapping["sources"].items():
        where = f"sources.{rel}"
        relation = spec["relation"]
        found = find_relation(conn, relation)
        if found is None:
            raise UsageError(f"config: '{where}.relation' = {relation!r}: relation does not exist")
        untrusted = conn.execute(query("relation_untrusted"), (found[0],)).fetchone()
        if untrusted:
            raise UsageError(f"config: '{where}.relation' = {relation!r}: {untrusted[0]}")
        have = {r[0] for r in conn.execute(query("relation_columns"), (found[0],))}
        for col, value in spec["columns"].items():
            if isinstance(value, str) and value not in have:
                raise UsageError(f"config: '{where}.columns.{col}' = {value!r}: no such column in {relation}")
        # the rendered expressions must evaluate against the relation and take the view's type, on
        # some of its rows too: `amount = "transaction_id"` is refused here, naming the key, rather
        # than failing every run with "invalid input syntax for type numeric"
        exprs = render_relation(conn, rel, spec)
        for col in COLUMNS[rel]:
            probe = sql.SQL("select count(({})::{}) from (select * from {} as s limit {}) s").format(
                sql.SQL(exprs[col]), sql.SQL(TYPES[col]), sql.SQL(exprs["relation"]), sql.Literal(PROBE_ROWS))
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(probe, binary=True)  # binary: the extended protocol, one statement
            except Exception as exc:  # psycopg.Error: report the key, not a traceback
                message = " ".join(str(exc).split())
                raise UsageError(f"config: '{where}.columns.{col}': {message}")


def render_relation(conn, rel: str, spec: dict) -> dict[str, str]:
    found = find_relation(conn, spec["relation"])
    if found is None:
        raise UsageError(f"config: 'sources.{rel}.relation' = {spec['relation']!r}: relation does not exist")
    _oid, relation, stores_rows = found
    # the inserting (or last updating) transaction of a row, when the relation stores rows here (a
    # table, partitioned table or materialized view; not a view or a foreign table): built-in
    # detectors skip late-window rows their previous run already saw
    out = {
        "relation": relation,
        "relation_text": spec["relation"],
        "row_xmin": "s.xmin" if stores_rows else "NULL",
    }
    for col in COLUMNS[rel]:
        value = spec["columns"].get(col)
        if value is None:
            out[col] = "NULL"
        elif isinstance(value, str):
            out[col] = "s." + sql.Identifier(value).as_string(conn)
        else:
            out[col] = value["sql"]
    return out


def template_context(conn, mapping: dict) -> dict:
    return {rel: render_relation(conn, rel, spec) for rel, spec in mapping["sources"].items()}


def has_column(mapping: dict, rel: str, col: str) -> bool:
    return mapping["sources"][rel]["columns"].get(col) is not None
