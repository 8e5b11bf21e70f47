"""Fixtures of the acceptance tests: the installed `monitorctl` as a subprocess (tests/acceptance/support.py)."""

import pytest

from tests.acceptance.support import Monitor, drop_jobs


@pytest.fixture
def monitor(db, conn):
    return Monitor(db, conn)


@pytest.fixture
def cron_cleanup(pg_server, db):
    """Remove the pg_cron jobs a test made for its database."""
    yield
    drop_jobs(pg_server, db)
