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


def table(conn, oid: int) -> Table | None:
    """How Citus stores relation ``oid``; None for a plain PostgreSQL relation (or no Citus here)."""
    if version(conn) is None:
        return None
    found = db.row(conn, "citus_table", (oid,))
    return Table(**found) if found else None


def require_coordinator(conn) -> None:
    """Refuse (naming the fix) a database that is not the coordinator of a Citus cluster."""
    if version(conn) is None:
        raise UsageError("--distributed needs Citus: CREATE EXTENSION citus in this database and add its workers "
                         "first (docs/scaling.md)")
    if not db.value(conn, "citus_is_coordinator"):
        raise UsageError("--distributed runs on the Citus coordinator: connect to the coordinator, not a worker")


def distribute_ledger(conn) -> None:
    """The reference ledger as distributed tables co-located by account_id (sql/citus/distribute_ledger.sql),
    in one transaction; refused, naming the fix, where this is not a Citus coordinator."""
    require_coordinator(conn)
    with conn.transaction():
        conn.execute((resources.sql_dir() / "citus" / "distribute_ledger.sql").read_text())
