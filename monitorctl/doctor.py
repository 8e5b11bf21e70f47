"""Index advice for mapped sources: which index each incremental detector needs on the user's tables.

Finding detectors read rows by time (`created_at >= since`) and follow bursts per account
(`account_id, time`); without those indexes every run scans the whole table. Plain column mappings
and columns read in a time zone (`{ column = ..., time_zone = ... }`: the index is on the same
expression) can be checked; a `{ sql = ... }` expression needs an expression index the user designs.
A transfer source (debit_account and credit_account) needs the per-account index on both. Only
tables take indexes: a mapped view is named as such, since monitorctl cannot tell which columns of
which table it reads.

Some detectors read only rows of one status: stuck_pending the pending ones older than its age, which
without a partial index is every older row of the table, failed_debit and consecutive_failures the
failed ones of their window. For those the advice is a partial index whose predicate is the mapping's
own status (a column, its `{ sql = ... }` expression or its word map over the raw column), and whether
one serves is asked of the planner itself: EXPLAIN of the detector's filter, sequential scans off.

On a Citus coordinator doctor also says how each mapped table is stored (docs/scaling.md): the
detectors' work is per account, so it runs on the shards when every mapped table is distributed by
its account column and the tables are co-located; a plain table there, a table distributed by
another column, or tables in different co-location groups are reported as missing, with the call
that fixes it. (Indexes on a distributed table are made on every shard by CREATE INDEX on the
coordinator, and EXPLAIN shows a shard's index under its own name: the partial-index check reads
the shards' plans.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import citus, db, mapping as mapping_mod
from .db import query

# (relation, logical columns that should lead an index, who needs it)
NEEDS = [
    ("transactions", ("created_at",), "failed_debit, consecutive_failures, concurrent_txn, failure_rate, "
                                      "balance_mismatch, balance_chain, volume_anomaly"),
    ("transactions", ("account_id", "created_at"), "consecutive_failures, concurrent_txn, balance_mismatch, "
                                                   "balance_chain"),
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
    status: str  # ok | missing | expression (cannot be checked) | view | unknown
    suggestion: str = ""


def _legs(spec: dict, logical: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The mapped columns a logical index stands for: a transfer's account is each of its two legs."""
    if "account_id" in logical and "debit_account" in spec["columns"]:
        return [tuple(leg if c == "account_id" else c for c in logical) for leg in ("debit_account", "credit_account")]
    return [logical]


def index_advice(conn, mapping: dict) -> list[Advice]:
    out = []
    for rel, logical_need, who in NEEDS:
        spec = mapping["sources"].get(rel)
        if spec is None:  # an optional source that is not mapped (scans)
            continue
        for logical in _legs(spec, logical_need):
            values = [spec["columns"].get(c) for c in logical]
            if values[-1] is None:  # an optional column that is not mapped (updated_at): nothing to index
                continue
            out.append(_advise(conn, spec["relation"], [*values], logical, who))
    answers = (mapping["sources"]["transactions"]).get("answers")
    if answers:
        out.append(_advise(conn, answers["relation"], [answers["key"], answers["order_by"]],
                           ("answers.key", "answers.order_by"), "the latest answer of every transaction"))
    on_citus = citus.version(conn) is not None
    return out + partial_advice(conn, mapping, on_citus) + distribution_advice(conn, mapping, on_citus)


DISTRIBUTION_NEED = "every detector's per-account work on the shards"


def distribution_advice(conn, mapping: dict, on_citus: bool) -> list[Advice]:
    """On a Citus coordinator: whether each mapped table is distributed by its account column, the
    tables co-located with the first of them, and the source views made after the distribution
    (nothing where Citus is not installed)."""
    if not on_citus:
        return []
    out, groups = [], {}
    for rel in ("transactions", "accounts", "scans"):
        spec = mapping["sources"].get(rel)
        if spec is None:
            continue
        cols = spec["columns"]
        accounts = [mapping_mod.column_name(cols[c]) for c in ("account_id", "debit_account", "credit_account")
                    if c in cols]
        found = mapping_mod.find_relation(conn, spec["relation"])
        if found is None or found[3] not in ("r", "p"):
            out.append(Advice(spec["relation"], ("distribution",), DISTRIBUTION_NEED, "view",
                              f"{spec['relation']} is not a table: distribute the tables it reads by their account "
                              "column, co-located"))
            continue
        table = citus.table(conn, found[0], installed=True)
        account = accounts[0] or "<account column>"
        if table is None or table.kind == "local":
            first = next(iter(groups), None)
            call = (sql.SQL("SELECT create_distributed_table({}, {}").format(sql.Literal(found[1]), sql.Literal(account))
                    + (sql.SQL(", colocate_with => {}").format(sql.Literal(first)) if first else sql.SQL(""))
                    + sql.SQL(")"))
            keys = db.value(conn, "unique_keys_without", {"relid": found[0], "column": account})
            first_step = (f"make its unique keys ({keys}) include {account} (docs/scaling.md), then " if keys else "")
            out.append(Advice(found[1], ("distribution",), DISTRIBUTION_NEED, "missing",
                              f"{first_step}{call.as_string(conn)}, then `monitorctl install` (the source views)"))
            continue
        if table.kind == "reference":
            out.append(Advice(found[1], ("reference table",), DISTRIBUTION_NEED, "ok",
                              "a copy on every node: joins with it run on the shards"))
        elif table.column not in accounts:
            shown = f"distributed by {table.column}" if table.column else "a single shard, no distribution column"
            call = sql.SQL("SELECT alter_distributed_table({}, distribution_column := {})").format(
                sql.Literal(found[1]), sql.Literal(account))
            out.append(Advice(found[1], (shown,), DISTRIBUTION_NEED, "missing", call.as_string(conn)))
        else:
            groups[found[1]] = table.colocation
            note = ("the credit legs of an account are on the shards of other accounts: per-account work on them "
                    "gathers rows across nodes" if len(accounts) == 2 else "")
            out.append(Advice(found[1], (f"distributed by {table.column}", f"{table.shards} shards"),
                              DISTRIBUTION_NEED, "ok", note))
        if db.value(conn, "view_reads_xmin", (f"monitor.src_{rel}",)):
            out.append(Advice(found[1], ("source view",), "the late-window skip (docs/scaling.md)", "missing",
                              f"monitor.src_{rel} was made before {found[1]} was distributed and reads its rows' "
                              "xmin, a worker's: run `monitorctl install` to make it again"))
    first = next(iter(groups), None)
    for name, group in groups.items():
        if group != groups[first]:
            call = sql.SQL("SELECT alter_distributed_table({}, colocate_with := {})").format(
                sql.Literal(name), sql.Literal(first))
            out.append(Advice(name, ("co-location",), DISTRIBUTION_NEED, "missing", call.as_string(conn)))
    return out


def _advise(conn, relation: str, values: list, logical: tuple[str, ...], who: str) -> Advice:
    found = mapping_mod.find_relation(conn, relation)
    try:
        keys = [index_key(conn, found, c.rsplit(".", 1)[-1], v) for c, v in zip(logical, values)]
    except Zoneless as exc:
        return _zoneless(relation, logical, who, exc.column)
    shown = tuple(k[1] if k else f"{c} (sql)" for k, c in zip(keys, logical))
    if found and found[3] in ("v", "f"):
        kind = "view" if found[3] == "v" else "foreign table"
        return Advice(relation, shown, who, "view",
                      f"{relation} is a {kind}: index the table it reads on these columns "
                      "(monitorctl cannot tell which table that is)")
    if not all(keys):
        return Advice(relation, shown, who, "expression",
                      "mapped through an sql expression: consider an expression index")
    if index_leads(conn, found, [k[0] for k in keys]):
        return Advice(relation, shown, who, "ok")
    return Advice(relation, shown, who, "missing",
                  f"CREATE INDEX ON {found[1]} ({', '.join(k[1] for k in keys)})")


class Zoneless(Exception):
    """A timestamp without time zone mapped without a time_zone: the view reads it in the session's
    zone (a cast no index can hold), so no index serves it."""

    def __init__(self, column: str):
        self.column = column


def index_key(conn, found, logical: str, value) -> tuple[str, str] | None:
    """How PostgreSQL shows a mapped value as an index key (pg_get_indexdef), and how CREATE INDEX
    takes it: the expression the source view reads (a column, read in its time zone, or cast to text
    when the view compares it as text); None for an `sql` expression or a column that is not there.
    Raises Zoneless for a clock time read in no named zone."""
    name = mapping_mod.column_name(value)
    if name is None or found is None:
        return None
    zone = value.get("time_zone") if isinstance(value, dict) else None
    key = db.row(conn, "index_key", {"relid": found[0], "name": name, "zone": zone,
                                     "logical": mapping_mod.TYPES.get(logical, "")})
    if key and key["zoneless"]:
        raise Zoneless(name)
    return (key["shown"], key["written"]) if key else None


def _zoneless(relation: str, shown, who: str, column: str) -> Advice:
    return Advice(relation, shown, who, "missing",
                  f"{column} is a timestamp without time zone read in the session's zone: no index serves it. "
                  f"Map it as {{ column = \"{column}\", time_zone = \"UTC\" }} (its zone), then index "
                  f"({column} AT TIME ZONE 'UTC') (docs/mapping.md)")


def partial_advice(conn, mapping: dict, on_citus: bool = False) -> list[Advice]:
    out = []
    for rel, logical, status, who, probe in PARTIAL_NEEDS:
        spec = mapping["sources"][rel]
        column, status_map = spec["columns"].get(logical), spec["columns"].get("status")
        if column is None or (status_map is None and "answers" not in spec):
            continue
        found = mapping_mod.find_relation(conn, spec["relation"])
        try:
            key = index_key(conn, found, logical, column)
        except Zoneless as exc:
            out.append(_zoneless(spec["relation"], (f"{logical} where status = {status}",), who, exc.column))
            continue
        if found and found[3] in ("v", "f"):
            out.append(Advice(spec["relation"], (f"{logical} where status = {status}",), who, "view",
                              f"{spec['relation']} is a view: index the table it reads "
                              "(monitorctl cannot tell which table that is)"))
            continue
        if key is None:
            out.append(Advice(spec["relation"], (logical,), who, "expression",
                              "mapped through an sql expression: consider a partial expression index"))
            continue
        if "answers" in spec or mapping_mod.reads_other_rows(status_map):
            out.append(Advice(spec["relation"], (f"{key[1]} where status = {status}",), who, "expression",
                              "the status is read from other rows (answers, a subquery): no partial index "
                              "can select it"))
            continue
        # the mapping's own status over the table's columns (its sql without the row alias s)
        predicate = sql.SQL("{} = {}").format(
            sql.SQL(re.sub(r"\bs\.", "", mapping_mod.status_expression(status_map, ""))), sql.Literal(status))
        suggestion = sql.SQL("CREATE INDEX ON {} ({}) WHERE {}").format(
            sql.SQL(found[1]), sql.SQL(key[1]), predicate).as_string(conn)
        served = partial_index_serves(conn, probe, on_citus)
        out.append(Advice(spec["relation"], (f"{key[1]} where status = {status}",), who,
                          {True: "ok", False: "missing", None: "unknown"}[served],
                          "" if served else suggestion if served is False else
                          "only a role that can read the source views (monitor's owner) can check this"))
    return out


def partial_index_serves(conn, probe: str, on_citus: bool = False) -> bool | None:
    """Whether the planner reads the detector's filter (the named query ``probe``, its EXPLAIN) through a partial index (None: this role may
    not ask, e.g. monitor_reader, which cannot read the source views)."""
    try:
        with conn.transaction(force_rollback=True):
            if on_citus:
                db.run(conn, "citus_set_local")
            db.run(conn, "planner_no_seqscan")
            plan = db.value(conn, probe)
    except psycopg.errors.InsufficientPrivilege:
        return None
    names = set()

    def walk(node, shard=False):
        if "Index Name" in node:  # a Citus shard's index is named <index>_<shard id>
            names.add(re.sub(r"_[0-9]+$", "", node["Index Name"]) if shard else node["Index Name"])
        for child in node.get("Plans", []):
            walk(child, shard)
        for task in node.get("Distributed Query", {}).get("Job", {}).get("Tasks", []):  # Citus: each shard's plan
            for remote in task.get("Remote Plan", []):
                for plan in remote:
                    walk(plan["Plan"], True)

    walk(plan[0]["Plan"])
    return bool(names) and conn.execute(query("partial_indexes"), (sorted(names),)).fetchone()[0]


def index_leads(conn, found, keys: list[str]) -> bool:
    """True when an index on the relation starts with exactly these keys (as pg_get_indexdef shows them)."""
    rows = conn.execute(query("index_columns"), (found[0],)).fetchall() if found else []
    return any(r[0][: len(keys)] == keys for r in rows)
