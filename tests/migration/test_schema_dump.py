"""The schema install builds equals the committed dump in tests/migration/schema.sql.

The dump is `pg_dump --schema-only --schema=monitor --schema=ledger --no-owner --no-privileges` of a
fresh `install --with-ledger`, without yoyo's bookkeeping tables, normalised (no comments, SET lines
or runs of blank lines). A change to migrations/ or sql/ changes it: review the diff, then regenerate
with `make schema-dump` (MONITOR_UPDATE_SCHEMA=1) and commit it with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitorctl.install import install
from tests.foundation_support import pg_dump_schema, schema_diff

SCHEMA_FILE = Path(__file__).with_name("schema.sql")


def test_installed_schema_matches_the_committed_dump(fresh_db):
    install(fresh_db, with_ledger=True, do_schedule=False)
    actual = pg_dump_schema(fresh_db)
    assert "CREATE TABLE monitor.events" in actual and "CREATE TABLE ledger.transactions" in actual
    if os.environ.get("MONITOR_UPDATE_SCHEMA"):
        SCHEMA_FILE.write_text(actual)
    assert SCHEMA_FILE.exists(), "tests/migration/schema.sql is missing: run `make schema-dump`"
    expected = SCHEMA_FILE.read_text()
    assert actual == expected, (
        "the schema install builds differs from tests/migration/schema.sql; if the change is intended, "
        "run `make schema-dump` and commit the file\n" + schema_diff(expected, actual))
