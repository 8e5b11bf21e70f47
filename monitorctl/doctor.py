"""Index advice for mapped sources: which index each incremental detector needs on the user's tables.

Finding detectors read rows by time (`created_at >= since`) and follow bursts per account
(`account_id, time`); without those indexes every run scans the whole table. Only plain column
mappings can be checked; a `{ sql = ... }` expression needs an expression index the user designs.

Some detectors read only rows of one status: stuck_pending the pending ones older than its age, which
without a partial index is every older row of the table, failed_debit and consecutive_failures the
failed ones of their window. For those the advice is a partial index whose predicate is the mapping's
own status (a column, or its `{ sql = ... }` expression over the raw columns), and whether one serves
is asked of the planner itself: EXPLAIN of the detector's filter, sequential scans off.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import db, mapping as mapping_mod
from .db import query

# (relation, logical columns that should lead an index, who needs it)
NEEDS = [
    ("transactions", ("created_at",), "failed_debit, consecutive_failures, concurrent_txn, failure_rate, "
                                      "balance_mismatch, volume_anomaly"),
    ("transactions", ("account_id", "created_at"), "consecutive_failures, concurrent_txn, balance_mismatch"),
    ("transactions", ("updated_at",), "failed_debit, consecutive_failures, balance_mismatch, failure_rate, "
                                      "negative_balance"),
    ("transactions", ("txn_id",), "lookups by id"),
    ("scans", ("scanned_at",), "duplicate_scan"),
    ("scans", ("account_id", "scanned_at"), "duplicate_scan"),
    ("accounts", ("account_id",), "balance_mismatch, negative_balance"),
    ("accounts", ("updated_at",), "balance_mismatch, negative_balance"),
]


# (relation, column that should lead a partial index, status its predicate selects, who needs it, the
# named query holding the detector's filter on the source view)
PARTIAL_NEEDS = [
    ("transactions", "created_at", "pending", "stuck_pending", "doctor_probe_pending_created"),
    ("transactions", "created_at", "failed", "failed_debit, consecutive_failures", "doctor_probe_failed_created"),
    ("transactions", "updated_at", "failed", "failed_debit, consecutive_failures", "doctor_probe_failed_updated"),
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
    return out + partial_advice(conn, mapping)


def partial_advice(conn, mapping: dict) -> list[Advice]:
    out = []
    for rel, logical, status, who, probe in PARTIAL_NEEDS:
        spec = mapping["sources"][rel]
        column, status_map = spec["columns"].get(logical), spec["columns"].get("status")
        if column is None:
            continue
        relation = mapping_mod.render_relation(conn, rel, spec)["relation"]
        if not isinstance(column, str):
            out.append(Advice(spec["relation"], (logical,), who, "expression",
                              "mapped through an sql expression: consider a partial expression index"))
            continue
        predicate = (sql.SQL("({}) = {}").format(sql.SQL(status_map["sql"]), sql.Literal(status))
                     if isinstance(status_map, dict) else
                     sql.SQL("{} = {}").format(sql.Identifier(status_map), sql.Literal(status)))
        suggestion = sql.SQL("CREATE INDEX ON {} ({}) WHERE {}").format(
            sql.SQL(relation), sql.Identifier(column), predicate).as_string(conn)
        served = partial_index_serves(conn, probe)
        out.append(Advice(spec["relation"], (f"{column} where status = {status}",), who,
                          {True: "ok", False: "missing", None: "unknown"}[served],
                          "" if served else suggestion if served is False else
                          "only a role that can read the source views (monitor's owner) can check this"))
    return out


def partial_index_serves(conn, probe: str) -> bool | None:
    """Whether the planner reads the detector's filter (the named query ``probe``, its EXPLAIN) through a partial index (None: this role may
    not ask, e.g. monitor_reader, which cannot read the source views)."""
    try:
        with conn.transaction(force_rollback=True):
            db.value(conn, "planner_no_seqscan")
            plan = db.value(conn, probe)
    except psycopg.errors.InsufficientPrivilege:
        return None
    names = set()

    def walk(node):
        if "Index Name" in node:
            names.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return bool(names) and conn.execute(query("partial_indexes"), (sorted(names),)).fetchone()[0]


def index_leads(conn, relation: str, columns: list[str]) -> bool:
    """True when an index on `relation` starts with exactly these columns, in this order."""
    found = mapping_mod.find_relation(conn, relation)
    rows = conn.execute(query("index_columns"), (found[0],)).fetchall() if found else []
    return any(r[0][: len(columns)] == columns for r in rows)
