"""install / uninstall through the real `monitorctl` command against the real PostgreSQL and pg_cron
(issue "Foundation"): tables, one named pg_cron job per enabled detector and maintenance job, a
re-install that keeps user changes, uninstall, refusal of a newer schema, unreachable servers and a
server without pg_cron."""

from __future__ import annotations

import psycopg
import pytest
import typer

from tests.foundation_support import (DETECTORS, LEDGER_MIGRATIONS, MAINTENANCE, MONITOR_MIGRATIONS,
                                      TABLES, applied_migrations, clean_cron_database, cron_jobs, dbname,
                                      drop_cron_jobs, expected_job_names, monitorctl, monitorctl_many,
                                      pg_dump_schema, skip_unless_cron_database_is_ours)
from monitorctl import embedded
from monitorctl.schedule import MAINTENANCE as MAINTENANCE_JOBS, PIN


def _require_cron(server):
    if not server.has_cron:
        pytest.skip(f"the test server has no pg_cron: {server.cron_note}")


@pytest.fixture
def target(pg_server, fresh_db):
    """A fresh, empty database whose pg_cron jobs are removed afterwards (dropping it would leave them)."""
    yield fresh_db
    drop_cron_jobs(pg_server, dbname(fresh_db))


@pytest.fixture
def cron_db(pg_server):
    """The cron database itself (`postgres`), cleaned up afterwards: uninstalled, ledger dropped."""
    dsn = skip_unless_cron_database_is_ours(pg_server)
    yield dsn
    clean_cron_database(pg_server, dsn)


def monitor_tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'monitor'")}


def detector_rows(conn) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in conn.execute("select name, enabled, schedule, params from monitor.detectors")}


def assert_jobs_match_registry(server, dsn: str) -> dict[str, tuple]:
    """One active job per enabled detector and per maintenance job, in this database, as configured."""
    db = dbname(dsn)
    jobs = cron_jobs(server, db)
    with psycopg.connect(dsn, autocommit=True) as c:
        enabled = {r[0]: r[1] for r in c.execute("select name, schedule from monitor.detectors where enabled")}
    local = db == server.cron_database
    prefix = "monitor." if local else f"monitor.{db}."
    # prune-cron runs in pg_cron's database: here when pg_cron lives here (else it is not in `jobs`)
    assert set(jobs) == {prefix + n for n in set(enabled) | MAINTENANCE | ({"prune-cron"} if local else set())}
    for name, (schedule, command, database, active) in jobs.items():
        assert database == db and active, (name, database, active)
        short = name[len(prefix):]
        if short == "prune-cron":
            assert schedule == "27 3 * * *" and command.startswith(PIN + "delete from cron.job_run_details"), command
        elif short in MAINTENANCE:
            assert (schedule, command) == (MAINTENANCE_JOBS[short][0], PIN + MAINTENANCE_JOBS[short][1]), name
        else:
            assert schedule == enabled[short], name
            assert command.startswith("SET search_path = pg_catalog, pg_temp; SET statement_timeout = ") and \
                command.endswith(f"SELECT monitor.run_detector('{short}')"), command
    return jobs


def pg_server_cron_rows(server, name: str) -> list[tuple]:
    with psycopg.connect(server.dsn(server.cron_database)) as c:
        return c.execute("select jobname, schedule, command, database from cron.job where jobname = %s",
                         (name,)).fetchall()


# -- install ---------------------------------------------------------------------------------------

def test_install_creates_tables_detectors_roles_and_jobs_in_another_database(pg_server, target):
    _require_cron(pg_server)
    result = monitorctl(target, "install", "--with-ledger")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # progress goes to stderr
    for mid in sorted(MONITOR_MIGRATIONS | LEDGER_MIGRATIONS):
        assert f"applied migration {mid}" in result.stderr
    # 10 detectors, 3 maintenance jobs, and the job that prunes their run records in the cron database
    assert "pg_cron 1." in result.stderr and "15 jobs created" in result.stderr
    with psycopg.connect(target, autocommit=True) as c:
        assert TABLES <= monitor_tables(c)
        assert {r[0] for r in c.execute("select tablename from pg_tables where schemaname = 'ledger'")} == \
            {"accounts", "transactions", "scans"}
        rows = detector_rows(c)
        assert set(rows) == DETECTORS and all(enabled for enabled, _s, _p in rows.values())
        assert applied_migrations(c) == sorted(MONITOR_MIGRATIONS | LEDGER_MIGRATIONS)
        roles = dict(c.execute("select rolname, rolcanlogin from pg_roles"
                               " where rolname in ('monitor_reader', 'monitor_operator')").fetchall())
        assert roles == {"monitor_reader": False, "monitor_operator": False}
    # the monitored database is not cron.database_name: jobs are monitor.<db>.<name>, created with
    # cron.schedule_in_database, so they run in the monitored database
    jobs = assert_jobs_match_registry(pg_server, target)
    assert all(name.startswith(f"monitor.{dbname(target)}.") for name in jobs)
    assert len(jobs) == len(DETECTORS) + len(MAINTENANCE)
    [(name, schedule, command, database)] = pg_server_cron_rows(pg_server, f"monitor.{dbname(target)}.prune-cron")
    assert database == pg_server.cron_database and command.startswith(PIN + "delete from cron.job_run_details")


def test_install_into_the_cron_database_names_jobs_monitor_dot_name(pg_server, cron_db):
    result = monitorctl(cron_db, "install", "--with-ledger")
    assert result.returncode == 0, result.stderr
    jobs = assert_jobs_match_registry(pg_server, cron_db)
    assert set(jobs) == expected_job_names(pg_server, pg_server.cron_database)
    assert "monitor.snapshot" in jobs and "monitor.failed_debit" in jobs

    result = monitorctl(cron_db, "uninstall", "--yes")
    assert result.returncode == 0, result.stderr
    assert not [name for name in cron_jobs(pg_server, pg_server.cron_database) if name.startswith("monitor.")]


def test_second_install_is_a_no_op_that_keeps_user_changes(pg_server, target):
    _require_cron(pg_server)
    assert monitorctl(target, "install", "--with-ledger").returncode == 0
    schema_before = pg_dump_schema(target)
    with psycopg.connect(target, autocommit=True) as c:
        c.execute("update monitor.detectors set enabled = false where name = 'duplicate_scan'")
        c.execute("""select monitor.set_params('failure_rate', '{"threshold": 0.2, "window": "30 minutes"}')""")
        c.execute("update monitor.detectors set schedule = '*/2 * * * *' where name = 'stuck_pending'")
        c.execute("update monitor.settings set value = '7' where key = 'retention.events_days'")
        before = detector_rows(c)

    for args in (["install", "--with-ledger"], ["install"]):  # an upgrade is a plain install
        result = monitorctl(target, *args)
        assert result.returncode == 0, result.stderr
        assert "applied migration" not in result.stderr
        with psycopg.connect(target, autocommit=True) as c:
            assert detector_rows(c) == before
            assert c.execute("select value from monitor.settings where key = 'retention.events_days'"
                             ).fetchone()[0] == 7
            assert applied_migrations(c) == sorted(MONITOR_MIGRATIONS | LEDGER_MIGRATIONS)
        jobs = assert_jobs_match_registry(pg_server, target)
        prefix = f"monitor.{dbname(target)}."
        assert prefix + "duplicate_scan" not in jobs  # disabled: its job is gone
        assert jobs[prefix + "stuck_pending"][0] == "*/2 * * * *"

    _enabled, _schedule, params = before["failure_rate"]
    assert params["threshold"] == 0.2 and params["window"] == "30 minutes" and params["min_volume"] == 20
    assert pg_dump_schema(target) == schema_before

    # a further install changes no job at all (same job ids)
    with psycopg.connect(pg_server.dsn(pg_server.cron_database)) as c:
        ids = c.execute("select jobname, jobid from cron.job where database = %s", (dbname(target),)).fetchall()
    assert "0 jobs created, 0 updated, 0 removed, 14 unchanged" in monitorctl(target, "install").stderr
    with psycopg.connect(pg_server.dsn(pg_server.cron_database)) as c:
        assert c.execute("select jobname, jobid from cron.job where database = %s",
                         (dbname(target),)).fetchall() == ids


def test_install_without_a_mapping_is_refused_naming_both_options(fresh_db):
    result = monitorctl(fresh_db, "install")
    assert result.returncode == 2
    assert "--with-ledger" in result.stderr and "--config" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with psycopg.connect(fresh_db) as c:
        assert c.execute("select to_regclass('monitor.detectors')").fetchone()[0] is None


@pytest.mark.single_node("the database has Citus there (tests/citus checks the refusal on a plain one)")
def test_distributed_without_citus_or_without_the_ledger_is_refused_in_one_line(fresh_db):
    for args, said in ((["--with-ledger", "--distributed"], "--distributed needs Citus: CREATE EXTENSION citus"),
                       (["--distributed"], "pass --with-ledger too")):
        result = monitorctl(fresh_db, "install", *args, "--no-schedule")
        assert result.returncode == 2, result.stderr
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        with psycopg.connect(fresh_db) as c:
            assert c.execute("select to_regnamespace('monitor'), to_regnamespace('ledger')").fetchone() == (None, None)


def test_no_schedule_creates_no_jobs_and_says_so(pg_server, target):
    result = monitorctl(target, "install", "--with-ledger", "--no-schedule")
    assert result.returncode == 0, result.stderr
    assert "scheduling is off: --no-schedule was given" in result.stderr
    if pg_server.has_cron:
        assert cron_jobs(pg_server, dbname(target)) == {}


def test_no_schedule_sticks_until_an_install_without_it(pg_server, target):
    _require_cron(pg_server)
    assert monitorctl(target, "install", "--with-ledger", "--no-schedule").returncode == 0
    for args in (["detectors", "enable", "failed_debit"], ["detectors", "set", "failed_debit", "schedule=*/2 * * * *"],
                 ["detectors", "disable", "failure_rate"]):
        result = monitorctl(target, *args)
        assert result.returncode == 0 and "--no-schedule" in result.stderr, (args, result.stderr)
        assert cron_jobs(pg_server, dbname(target)) == {}, args
    assert "scheduling is off (`monitorctl install --no-schedule`)" in monitorctl(target, "status").stdout
    result = monitorctl(target, "install")
    assert result.returncode == 0 and "14 jobs created" in result.stderr, result.stderr  # failure_rate is off
    assert len(cron_jobs(pg_server, dbname(target))) == 13  # and prune-cron, in pg_cron's database


# -- uninstall -------------------------------------------------------------------------------------

def test_uninstall_removes_monitor_only_and_a_later_install_rebuilds(pg_server, target):
    assert monitorctl(target, "install", "--with-ledger").returncode == 0
    with psycopg.connect(target, autocommit=True) as c:
        # consistent rows (nothing for a detector to find, should a pg_cron tick run them meanwhile)
        c.execute("insert into ledger.accounts (account_id, balance) values ('card-1', 5)")
        c.execute("insert into ledger.transactions (txn_id, account_id, amount, status)"
                  " values ('t-1', 'card-1', 5, 'success')")
        c.execute("insert into ledger.scans (scan_id, account_id) values ('s-1', 'card-1')")
        c.execute("create table public.payments (id int primary key, note text)")
        c.execute("insert into public.payments values (1, 'mine')")
        c.execute("insert into monitor.events (detector, kind, severity, subject, dedup_key, summary)"
                  " values ('negative_balance', 'condition', 'high', 'card-1', 'card-1', 'test event')")

    refused = monitorctl(target, "uninstall")  # not a terminal and no --yes: nothing happens
    assert refused.returncode == 2 and "--yes" in refused.stderr
    with psycopg.connect(target) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is not None

    result = monitorctl(target, "uninstall", "--yes")
    assert result.returncode == 0, result.stderr
    assert "1 events" in result.stderr  # says what it drops
    with psycopg.connect(target, autocommit=True) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is None
        assert c.execute("select count(*) from pg_class where relname like '%yoyo%'").fetchone()[0] == 0
        counts = c.execute("select (select count(*) from ledger.accounts), (select count(*) from ledger.transactions),"
                           " (select count(*) from ledger.scans), (select count(*) from public.payments)").fetchone()
        assert counts == (1, 1, 1, 1)
    if pg_server.has_cron:
        assert cron_jobs(pg_server, dbname(target)) == {}

    again = monitorctl(target, "uninstall", "--yes")
    assert again.returncode == 3 and "not installed" in again.stderr

    # a later install starts clean, over the existing ledger tables and their rows
    result = monitorctl(target, "install", "--with-ledger")
    assert result.returncode == 0, result.stderr
    for mid in MONITOR_MIGRATIONS | LEDGER_MIGRATIONS:
        assert f"applied migration {mid}" in result.stderr
    with psycopg.connect(target, autocommit=True) as c:
        assert TABLES <= monitor_tables(c)
        assert set(detector_rows(c)) == DETECTORS
        assert c.execute("select count(*) from monitor.events").fetchone()[0] == 0
        assert c.execute("select count(*) from ledger.transactions").fetchone()[0] == 1
    if pg_server.has_cron:
        assert_jobs_match_registry(pg_server, target)


# -- refusals ----------------------------------------------------------------------------------------

def _registered_commands() -> set[str]:
    from monitorctl.cli import app

    return set(typer.main.get_command(app).commands)


# commands that read an installed schema, as they would be called; those not built yet are skipped
INSTALLED_COMMANDS = [
    ["migrate", "status"], ["uninstall", "--yes"], ["status"], ["events"], ["run"], ["prune", "--dry-run"],
    ["detectors", "list"],
]


def test_a_newer_schema_is_refused_with_exit_3(db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("insert into monitor._yoyo_migration (migration_hash, migration_id, applied_at_utc)"
                  " values ('future', '9999.future', now() at time zone 'utc')")
        c.execute("update monitor.detectors set enabled = false where name = 'failed_debit'")
        before = detector_rows(c)
    available = _registered_commands()
    commands = [["install"], ["install", "--with-ledger"]] + [
        cmd for cmd in INSTALLED_COMMANDS if cmd[0] in available]
    assert ["migrate", "status"] in commands
    for cmd, result in zip(commands, monitorctl_many(db, commands)):
        assert result.returncode == 3, (cmd, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (cmd, result.stderr)
        assert "9999.future" in lines[0] and "newer monitorctl" in lines[0], (cmd, lines[0])
    with psycopg.connect(db, autocommit=True) as c:
        assert detector_rows(c) == before  # nothing changed
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is not None


@pytest.mark.parametrize("dsn, server, every_command", [
    ("host=/nonexistent port=1 dbname=x", "/nonexistent:1/x", True),
    ("postgresql://someone@127.0.0.1:1/payments", "127.0.0.1:1/payments", False),
])
def test_an_unreachable_server_exits_3_with_one_line_naming_it(dsn, server, every_command):
    available = _registered_commands() if every_command else {"migrate"}
    commands = [["install", "--with-ledger"]] + [c for c in INSTALLED_COMMANDS if c[0] in available]
    for cmd, result in zip(commands, monitorctl_many(dsn, commands, timeout=30)):
        assert result.returncode == 3, (cmd, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and server in lines[0], (cmd, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""


# -- servers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_without_cron():
    try:
        server = embedded.start_local(with_cron=False)
    except embedded.EmbeddedError as exc:
        pytest.skip(f"no local PostgreSQL to start without pg_cron: {exc}")
    yield server
    server.stop()


def test_install_without_pg_cron_works_and_says_scheduling_is_off(server_without_cron):
    server = server_without_cron
    assert not server.has_cron
    dsn = server.create_database("no_cron")
    result = monitorctl(dsn, "install", "--with-ledger")
    assert result.returncode == 0, result.stderr
    assert "scheduling is off: pg_cron is not loaded on this server" in result.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        assert TABLES <= monitor_tables(c)
        assert set(detector_rows(c)) == DETECTORS
        assert c.execute("select to_regnamespace('cron')").fetchone()[0] is None
        # what pg_cron would run elsewhere works here when called
        assert c.execute("select monitor.snapshot()").fetchone()[0] is not None
        c.execute("call monitor.run_all()")
        c.execute("call monitor.prune()")
        assert c.execute("select count(distinct detector) from monitor.detector_runs").fetchone()[0] == len(DETECTORS)
    again = monitorctl(dsn, "install")
    assert again.returncode == 0 and "scheduling is off" in again.stderr, again.stderr


def test_external_backend_is_chosen_from_monitor_test_dsn(pg_server, monkeypatch):
    monkeypatch.setenv("MONITOR_TEST_DSN", pg_server.dsn())
    server = embedded.start()
    assert server.backend == "external"
    assert server.cron_database == pg_server.cron_database
    with psycopg.connect(server.dsn()) as c:
        assert c.execute("select 1").fetchone() == (1,)
