"""Index advice for mapped sources: which index each incremental detector needs on the user's tables.

Finding detectors read rows by time (`created_at >= since`) and follow bursts per account
(`account_id, time`); without those indexes every run scans the whole table. Only plain column
mappings can be checked; a `{ sql = ... }` expression needs an expression index the user designs.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from . import mapping as mapping_mod
from .db import query

# (relation, logical columns that should lead an index, who needs it)
NEEDS = [
    ("transactions", ("created_at",), "failed_debit, consecutive_failures, concurrent_txn, failure_rate, "
                                      "balance_mismatch, volume_anomaly"),
    ("transactions", ("account_id", "created_at"), "consecutive_failures, concurrent_txn, balance_mismatch"),
    ("transactions", ("updated_at",), "failed_debit, consecutive_failures, balance_mismatch"),
    ("transactions", ("txn_id",), "lookups by id"),
    ("scans", ("scanned_at",), "duplicate_scan"),
    ("scans", ("account_id", "scanned_at"), "duplicate_scan"),
    ("accounts", ("account_id",), "balance_mismatch"),
    ("accounts", ("updated_at",), "balance_mismatch"),
]


@dataclass
class Advice:
    relation: str
    columns: tuple[str, ...]
    needed_by: str
    status: str  # ok | missing | expression (cannot be checked)
    suggestion: str = ""


def index_advice(conn, mapping: dict) -> list[Advice]:
    out = []
    for rel, logical, who in NEEDS:
        spec = mapping["sources"][rel]
        cols = [spec["columns"].get(c) for c in logical]
        if cols[-1] is None:  # an optional column that is not mapped (updated_at): nothing to index
            continue
        if not all(isinstance(c, str) for c in cols):
            out.append(Advice(spec["relation"], logical, who, "expression",
                              "mapped through an sql expression: consider an expression index"))
            continue
        leading = index_leads(conn, spec["relation"], cols)
        suggestion = "" if leading else sql.SQL("CREATE INDEX ON {} ({})").format(
            sql.SQL(mapping_mod.render_relation(conn, rel, spec)["relation"]),
            sql.SQL(", ").join(sql.Identifier(c) for c in cols)).as_string(conn)
        out.append(Advice(spec["relation"], tuple(cols), who, "ok" if leading else "missing", suggestion))
    return out


def index_leads(conn, relation: str, columns: list[str]) -> bool:
    """True when an index on `relation` starts with exactly these columns, in this order."""
    found = mapping_mod.find_relation(conn, relation)
    rows = conn.execute(query("index_columns"), (found[0],)).fetchall() if found else []
    return any(r[0][: len(columns)] == columns for r in rows)
