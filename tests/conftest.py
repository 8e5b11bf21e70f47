"""Shared fixtures: one real PostgreSQL (with pg_cron) per test session.

The server comes from monitorctl.embedded: MONITOR_TEST_DSN if set, else a throwaway local cluster
when the PostgreSQL server binaries are present, else a Docker container (MONITOR_TEST_BACKEND=docker
asks for one; MONITOR_TEST_BACKEND=citus, a three-node Citus cluster, docs/scaling.md). A template database is installed once
(`install --with-ledger --no-schedule`); each test gets its own copy of it.
"""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from monitorctl import embedded
from monitorctl.install import install

_counter = itertools.count()


def on_citus() -> bool:
    """The tests run against a Citus cluster (MONITOR_TEST_BACKEND=citus, `make test-citus`)."""
    return os.environ.get("MONITOR_TEST_BACKEND", "").strip().lower() == "citus"


def pytest_runtest_setup(item):
    # @pytest.mark.single_node("why"): a test of something a Citus cluster does not have, skipped there
    marker = item.get_closest_marker("single_node")
    if marker and on_citus():
        pytest.skip(f"not on a Citus cluster: {marker.args[0]}")


@pytest.fixture(scope="session")
def pg_server(request):
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    say = (lambda msg: reporter.write_line(f"monitorctl tests: {msg}")) if reporter else None
    if on_citus() and not embedded.citus_present():
        pytest.skip("Citus is not installed for this PostgreSQL: `make test-citus` needs it (docs/scaling.md)")
    server = embedded.start(progress=say)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server):
    """A database with monitor and the reference ledger installed, pg_cron jobs not created."""
    name = f"monitor_template_{os.getpid()}"
    dsn = pg_server.create_database(name)
    # on a Citus cluster the reference ledger is distributed by account (install --distributed)
    install(dsn, with_ledger=True, do_schedule=False, distributed=pg_server.backend == "citus")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # no jobs in the template, but scheduling on: a test's `detectors enable` creates its jobs
        conn.execute("update monitor.settings set value = 'true' where key = 'scheduling.enabled'")
    pg_server.set_template(name, True)
    yield name
    pg_server.set_template(name, False)
    pg_server.drop_database(name)


@pytest.fixture
def fresh_db(pg_server):
    """An empty database of its own (nothing installed); its DSN."""
    name = f"t_fresh_{os.getpid()}_{next(_counter)}"
    dsn = pg_server.create_database(name)
    yield dsn
    drop_with_jobs(pg_server, name)


@pytest.fixture
def db(pg_server, template_db):
    """A copy of the installed template database for this test; its DSN."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    dsn = pg_server.create_database(name, template=template_db)
    yield dsn
    drop_with_jobs(pg_server, name)


def drop_with_jobs(server, name: str) -> None:
    """Drop a test database and the pg_cron jobs an install made for it (a dropped database keeps them)."""
    if server.has_cron:
        with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as c:
            c.execute("select cron.unschedule(jobid) from cron.job where database = %s or jobname = %s",
                      (name, f"monitor.{name}.prune-cron"))
    server.drop_database(name)


@pytest.fixture
def conn(db):
    """An autocommit connection to this test's installed database."""
    with psycopg.connect(db, autocommit=True) as c:
        yield c
