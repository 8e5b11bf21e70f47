"""Where the shipped SQL lives: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _root(name: str) -> Path:
    packaged = Path(str(resources.files("monitorctl") / name))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def sql_dir() -> Path:
    return _root("sql")


def migrations_dir(which: str = "monitor") -> Path:
    return _root("migrations") / which


def migration_ids(which: str = "monitor") -> list[str]:
    """Migration ids in order (a migration's id is its file name without .sql)."""
    return sorted(p.name[:-4] for p in migrations_dir(which).glob("*.sql")
                  if not p.name.endswith(".rollback.sql"))


def schema_version() -> str:
    """The schema version this build installs: the number of its newest migration."""
    return migration_ids()[-1].split(".", 1)[0]


def festival_sql() -> str:
    """The demo's synthetic festival (monitorctl/festival.sql)."""
    return (resources.files("monitorctl") / "festival.sql").read_text()
