"""Citus: whether this database is (the coordinator of) a Citus cluster, how a relation is stored
there, and the distributed reference ledger (docs/scaling.md).

monitor's own tables stay on the coordinator: they are small, written by one runner at a time, and
read with the source views, whose per-account work Citus pushes down to the shards."""

from __future__ import annotations

from dataclasses import dataclass

from . import db, resources
from .db import query
from .errors import UsageError


@dataclass(frozen=True)
class Table:
    kind: str  # distributed | reference | local (a Citus local table, on the coordinator)
    column: str | None  # the distribution column of a distributed table
    colocation: int
    shards: int

    @property
    def rows_elsewhere(self) -> bool:
        """Its rows live on other nodes (a row's xmin is then another server's transaction id)."""
        return self.kind in ("distributed", "reference")


def version(conn) -> str | None:
    """The citus extension's version in this database, or None."""
    found = conn.execute(query("citus_version")).fetchone()
    return found[0] if found else None


def table(conn, oid: int, installed: bool | None = None) -> Table | None:
    """How Citus stores relation ``oid``; None for a plain PostgreSQL relation (or no Citus here).
    ``installed``: whether the citus extension is here, when the caller already asked."""
    if not (version(conn) is not None if installed is None else installed):
        return None
    found = db.row(conn, "citus_table", (oid,))
    return Table(**found) if found else None


def require_coordinator(conn, what: str = "--distributed") -> None:
    """Refuse (naming the fix) a database that is not the coordinator of a Citus cluster with workers."""
    if version(conn) is None:
        raise UsageError(f"{what} needs Citus: CREATE EXTENSION citus in this database and add its workers "
                         "first (docs/scaling.md)")
    refuse_worker(conn)
    if not db.row(conn, "citus_node")["workers"]:
        raise UsageError(f"{what}: this Citus coordinator has no workers: SELECT citus_set_coordinator_host(...) "
                         "and citus_add_node(...) for each worker first (docs/scaling.md)")


def refuse_worker(conn) -> None:
    """Refuse a Citus worker: monitorctl is installed, and connected to, on the coordinator."""
    if version(conn) is not None and not db.row(conn, "citus_node")["coordinator"]:
        raise UsageError("this database is on a Citus worker: install and run monitorctl on the coordinator "
                         "(docs/scaling.md)")


def distribute_ledger(conn) -> None:
    """The reference ledger as distributed tables co-located by account_id (sql/citus/distribute_ledger.sql),
    in the caller's transaction (install's, which then renders the source views over the distributed
    tables); require_coordinator first."""
    conn.execute((resources.sql_dir() / "citus" / "distribute_ledger.sql").read_text())
