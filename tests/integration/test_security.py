"""The privilege model (docs/security.md): no path from monitor_reader or monitor_operator (or any user
of the database) to the rights of monitor's owner.

Every attack here was reproduced against an earlier version: a domain planted in pg_temp, an operator
planted in public, a custom detector whose body is replaced after registration, overlapping
resolves, a held advisory lock, a statement timeout that fires once per CALL, parameters that break
every run, and a mapping expression that runs when it is checked.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.acceptance.support import invoke, run_cli, with_user
from tests.ledger import Ledger

_roles = itertools.count()

# Every function a role may call, with a call that reaches its body. A new grant without an entry
# here fails test_roles_may_call_exactly_these_functions, so the attacks below always cover it.
READER_CALLS = {
    "monitor.cron_database()": "select monitor.cron_database()",
    "monitor.detector_problems()": "select count(*) from monitor.detector_problems()",
    "monitor.receiver_has_secret(text)": "select monitor.receiver_has_secret('hook')",
}
OPERATOR_CALLS = READER_CALLS | {
    "monitor.acknowledge(bigint[],text)": "select monitor.acknowledge(array[{event}]::bigint[], 'x')",
    "monitor.resolve(bigint[],text,text)": "select monitor.resolve(array[{event}]::bigint[], 'x')",
    "monitor.interval_ms(text)": "select monitor.interval_ms('5 seconds')",
    "monitor.add_silence(text,text,timestamp with time zone,timestamp with time zone,text)":
        "select monitor.add_silence('failed_debit', 'C-*', now(), now() + interval '1 hour', 'maintenance')",
    "monitor.expire_silence(bigint)":
        "select monitor.expire_silence(monitor.add_silence(null, null, null, now() + interval '1 hour', 'x'))",
    **{f"monitor.run_detector(text,timestamp with time zone,timestamp with time zone)#{d}":
       f"select monitor.run_detector('{d}')"
       for d in ("balance_mismatch", "concurrent_txn", "consecutive_failures", "detector_health",
                 "duplicate_scan", "failed_debit", "failure_rate", "negative_balance", "stuck_pending",
                 "volume_anomaly")},
}
# types the functions use, each shadowed by a domain in the attacker's pg_temp
SHADOWED_TYPES = ["text", "jsonb", "numeric", "timestamptz", "interval", "xid8", "regprocedure", "name"]


@pytest.fixture
def login_role(pg_server, db):
    """make(grant) -> a new LOGIN role that has exactly ``grant`` (or nothing), and its DSN for this db."""
    made = []

    def make(grant: str | None = None) -> tuple[str, str]:
        name = f"sec_{os.getpid()}_{next(_roles)}"
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
            if grant:
                c.execute(sql.SQL("grant {} to {}").format(sql.Identifier(grant), sql.Identifier(name)))
        made.append(name)
        return name, with_user(db, name)

    yield make
    with psycopg.connect(db, autocommit=True) as c:
        for name in made:
            c.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
    with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
        for name in made:
            c.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def is_superuser(conn, role: str) -> bool:
    return conn.execute("select rolsuper from pg_roles where rolname = %s", (role,)).fetchone()[0]


def an_event(conn) -> int:
    ledger = Ledger(conn).recent(60)
    ledger.txn(f"sec{time.monotonic_ns()}", "SEC", amount=-5, status="failed", before=10, after=5)
    ledger.run("failed_debit")
    return conn.execute("select max(event_id) from monitor.events where status = 'open'").fetchone()[0]


# -- every function pins its search_path -----------------------------------------------------------

def test_every_function_pins_search_path_with_pg_temp_last(conn):
    rows = conn.execute("""
        select p.oid::regprocedure::text, p.prokind, p.proconfig, p.prosrc
          from pg_proc p where p.pronamespace in ('monitor'::regnamespace, 'ledger'::regnamespace)""").fetchall()
    assert len(rows) > 40
    for name, kind, config, src in rows:
        if kind == "p":
            # a procedure cannot have SET and COMMIT: it pins its path first and after every COMMIT
            pin = "PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);"
            body = src.split("BEGIN", 1)[1]
            assert body.strip().startswith(pin), name
            assert body.count("COMMIT;") == body.count("COMMIT;\n" + " " * 12 + pin) or \
                all(part.lstrip().startswith(pin) or part.lstrip().startswith("RETURN")
                    for part in body.split("COMMIT;")[1:]), name
        else:
            paths = [c for c in (config or []) if c.startswith("search_path=")]
            assert paths and paths[0].replace(" ", "").endswith(",pg_temp"), (name, config)


def test_roles_may_call_exactly_these_functions(conn):
    def callable_by(role):
        return {r[0] for r in conn.execute("""
            select p.oid::regprocedure::text from pg_proc p
             where p.pronamespace = 'monitor'::regnamespace and has_function_privilege(%s, p.oid, 'execute')
            """, (role,))}
    assert callable_by("monitor_reader") == set(READER_CALLS)
    assert callable_by("monitor_operator") == {k.split("#")[0] for k in OPERATOR_CALLS}


# -- a domain planted in pg_temp -------------------------------------------------------------------

def plant_in_pg_temp(conn, role: str) -> None:
    conn.execute("create temp table calls (n int)")
    conn.execute(sql.SQL("""
        create function pg_temp.evil(x anyelement) returns boolean language plpgsql as $f$
        begin
            insert into pg_temp.calls values (1);
            execute 'alter role {} superuser';
            return true;
        end $f$""").format(sql.Identifier(role)))
    for t in SHADOWED_TYPES:
        conn.execute(sql.SQL("create domain pg_temp.{} as pg_catalog.{} check (pg_temp.evil(value))")
                     .format(sql.Identifier(t), sql.SQL(t)))


@pytest.mark.parametrize("call", sorted(OPERATOR_CALLS))
def test_pg_temp_domain_does_not_run_in_any_function_an_operator_may_call(conn, login_role, call):
    role, dsn = login_role("monitor_operator")
    event = an_event(conn)
    with psycopg.connect(dsn, autocommit=True) as attacker:
        plant_in_pg_temp(attacker, role)
        try:
            attacker.execute(OPERATOR_CALLS[call].format(event=event))
        except psycopg.errors.InsufficientPrivilege:
            pass  # refused is fine too: what matters is what ran
        assert attacker.execute("select count(*) from pg_temp.calls").fetchone()[0] == 0
    assert not is_superuser(conn, role)


# -- an operator planted in public -----------------------------------------------------------------

@pytest.fixture
def planted(conn, login_role):
    """A role that may CREATE in public (the default in databases upgraded from PostgreSQL 14) plants
    operators and functions there that make it superuser when anyone superuser uses them."""
    role, dsn = login_role()
    conn.execute(sql.SQL("grant create on schema public to {}").format(sql.Identifier(role)))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("""
            create function public.evil_text(a jsonb, b text) returns text language plpgsql as $f$
            begin
                if (select rolsuper from pg_roles where rolname = current_user) then
                    execute 'alter role {} superuser';
                end if;
                return a #>> string_to_array(trim(b, '{{}}'), ',');
            end $f$""").format(sql.Identifier(role)))
        c.execute("create operator public.#>> (leftarg = jsonb, rightarg = text, function = public.evil_text)")
        c.execute("create function public.evil_bool(a text, b varchar) returns boolean language sql"
                  " as $f$ select public.evil_text('{}', b) is null or a = b::text $f$")
        c.execute("create operator public.= (leftarg = text, rightarg = varchar, function = public.evil_bool)")
    yield role
    conn.execute(sql.SQL("revoke create on schema public from {}").format(sql.Identifier(role)))


def test_public_operator_is_never_used_by_the_cli_or_the_cron_jobs(pg_server, db, conn, planted):
    conn.execute("update monitor.settings set value = '1' where key = 'retention.batch_size'")
    an_event(conn)
    for args in (["install"], ["status"], ["status", "--health"], ["prune"], ["prune", "--dry-run"], ["run"],
                 ["events"], ["detectors", "list"], ["doctor"], ["detectors", "set", "failure_rate", "min_volume=10"],
                 ["migrate", "status"]):
        r = run_cli(*args, dsn=db)
        assert r.returncode in (0, 1), (args, r.stderr)
        assert not is_superuser(conn, planted), args
    # what pg_cron runs, as its owner with the default search_path
    assert conn.execute("show search_path").fetchone()[0] == '"$user", public'
    conn.execute("call monitor.prune()")
    conn.execute("call monitor.run_all()")
    conn.execute("select monitor.snapshot(), monitor.refresh()")
    assert not is_superuser(conn, planted)


# -- pg_cron jobs of databases whose names share a prefix ------------------------------------------

def test_databases_whose_names_share_a_prefix_keep_their_own_jobs(pg_server):
    if not pg_server.has_cron:
        pytest.skip("no pg_cron")
    from tests.foundation_support import cron_jobs, drop_cron_jobs
    base = f"cx{os.getpid()}"
    names = [base, f"{base}.y", f"{base} y", f"{base}'q"]
    dsns = {n: pg_server.create_database(n) for n in names}
    try:
        for n in reversed(names):
            r = run_cli("install", "--with-ledger", dsn=dsns[n])
            assert r.returncode == 0, r.stderr
        before = {n: cron_jobs(pg_server, n) for n in names}
        assert all(len(jobs) == 14 for jobs in before.values()), {n: len(j) for n, j in before.items()}
        r = run_cli("install", dsn=dsns[base])
        assert "0 removed" in r.stderr and "15 unchanged" in r.stderr, r.stderr  # 14 here, prune-cron in pg_cron's
        r = run_cli("uninstall", "--yes", dsn=dsns[base])
        assert r.returncode == 0, r.stderr
        assert cron_jobs(pg_server, base) == {}
        for n in names[1:]:
            assert cron_jobs(pg_server, n) == before[n], n
        with psycopg.connect(pg_server.dsn(pg_server.cron_database), autocommit=True) as c:
            prune_cron = {r[0] for r in c.execute("select jobname from cron.job where jobname like %s",
                                                  (f"monitor.{base}%prune-cron",))}
        assert prune_cron == {f"monitor.{n}.prune-cron" for n in names[1:]}
    finally:
        for n in names:
            drop_cron_jobs(pg_server, n)
            pg_server.drop_database(n)


# -- custom detectors run with monitor's rights ----------------------------------------------------

def make_detector_function(conn, name: str, body: str = "select null::monitor.finding where false",
                           pinned: bool = True) -> None:
    pin = "set search_path = pg_catalog, monitor, pg_temp" if pinned else ""
    conn.execute(f"create or replace function public.{name}(params jsonb, since timestamptz)"
                 f" returns setof monitor.finding language sql {pin} as $$ {body} $$")


def test_only_functions_nobody_else_can_change_may_be_registered(conn, login_role):
    role, _dsn = login_role()
    make_detector_function(conn, "theirs")
    conn.execute(sql.SQL("alter function public.theirs(jsonb, timestamptz) owner to {}").format(sql.Identifier(role)))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"is owned by {role}"):
        conn.execute("select monitor.register_detector('theirs', 'public.theirs', 'low', 'finding')")
    make_detector_function(conn, "unpinned", pinned=False)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must pin its search_path"):
        conn.execute("select monitor.register_detector('unpinned', 'public.unpinned', 'low', 'finding')")
    assert conn.execute("select count(*) from monitor.detectors where name in ('theirs', 'unpinned')"
                        ).fetchone()[0] == 0


def test_a_run_refuses_a_function_changed_since_it_was_registered(conn, login_role):
    ledger = Ledger(conn)
    make_detector_function(conn, "mine")
    conn.execute("select monitor.register_detector('mine', 'public.mine', 'low', 'finding')")
    ledger.run("mine")
    assert ledger.last_run("mine")["status"] == "ok"
    # the body replaced after registration (by its owner, or by whoever took the function over)
    make_detector_function(conn, "mine", "select 'x', 'k', null, null::numeric, 'changed', '{}'::jsonb")
    ledger.run("mine")
    run = ledger.last_run("mine")
    assert run["status"] == "error" and "changed since it was registered" in run["error"]
    assert ledger.events("mine") == []
    # handed to another owner: refused as well
    conn.execute("select monitor.register_detector('mine', 'public.mine', 'low', 'finding')")
    role, _dsn = login_role()
    conn.execute(sql.SQL("alter function public.mine(jsonb, timestamptz) owner to {}").format(sql.Identifier(role)))
    ledger.run("mine")
    assert "changed since it was registered" in ledger.last_run("mine")["error"]
    # re-registered by its rightful owner, it runs again
    conn.execute("alter function public.mine(jsonb, timestamptz) owner to current_user")
    conn.execute("select monitor.register_detector('mine', 'public.mine', 'low', 'finding')")
    ledger.run("mine")
    assert ledger.last_run("mine")["status"] == "ok" and ledger.keys("mine") == ["k"]


# -- overlapping lifecycle calls -------------------------------------------------------------------

@pytest.mark.parametrize("call,transition", [
    ("select monitor.resolve(array[%s]::bigint[], 'note', %s)", "resolved"),
    ("select monitor.acknowledge(array[%s]::bigint[], %s)", "acknowledged"),
])
def test_overlapping_calls_take_turns(db, conn, call, transition):
    event = an_event(conn)
    outcome = {}
    with psycopg.connect(db) as first:
        assert first.execute(call, (event, "first")).fetchone()[0] == 1   # not yet committed

        def second():
            with psycopg.connect(db, autocommit=True) as c:
                try:
                    outcome["changed"] = c.execute(call, (event, "second")).fetchone()[0]
                except psycopg.Error as exc:
                    outcome["error"] = exc.diag.message_primary

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert t.is_alive()  # waits for the first
        first.commit()
        t.join(10)
    if transition == "resolved":
        assert outcome == {"error": f"event {event} is already resolved"}
    else:
        assert outcome == {"changed": 0}
    rows = conn.execute("select actor from monitor.alert_history where event_id = %s and transition = %s",
                        (event, transition)).fetchall()
    assert rows == [("first",)]
    who = conn.execute("select coalesce(resolved_by, acknowledged_by) from monitor.events where event_id = %s",
                       (event,)).fetchone()[0]
    assert who == "first"


@pytest.mark.parametrize("sql_call,message", [
    ("select monitor.acknowledge(array[NULL]::bigint[])", "event ids must not be NULL"),
    ("select monitor.resolve(NULL)", "event ids must not be NULL"),
    ("select monitor.unregister_detector('nosuch')", "unknown detector nosuch"),
])
def test_null_ids_and_unknown_detectors_are_refused(conn, sql_call, message):
    with pytest.raises(psycopg.Error, match=message):
        conn.execute(sql_call)


# -- the runner's lock cannot be taken by others ---------------------------------------------------

def test_nobody_else_can_silence_a_detector(db, conn, login_role):
    _role, dsn = login_role()
    with psycopg.connect(dsn) as other:
        # what silenced detectors before: the runner's old advisory lock keys
        other.execute("select pg_advisory_lock(472101, hashtext('failed_debit'))")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("select from monitor.run_locks for update")
        other.rollback()
        Ledger(conn).run("failed_debit")
        assert Ledger(conn).last_run("failed_debit")["status"] == "ok"
    _role, reader = login_role("monitor_reader")
    with psycopg.connect(reader) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("select from monitor.detectors for update")


def test_install_says_what_it_waits_for(db):
    from tests.acceptance.support import popen_cli
    with psycopg.connect(db, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(472101, 1)")
        pid = holder.info.backend_pid
        proc = popen_cli("install", dsn=db)
        try:
            line = proc.stderr.readline()
            assert "waiting for the install lock" in line and f"pid {pid}" in line, line
            assert proc.poll() is None
            holder.execute("select pg_advisory_unlock(472101, 1)")
            _out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "install complete" in err


# -- run_all and the statement timeout -------------------------------------------------------------

def test_run_all_stops_after_a_timeout_instead_of_running_the_rest_unbounded(conn):
    conn.execute("update monitor.detectors set enabled = false")
    for name in ("hang_a", "hang_b"):
        make_detector_function(conn, name, "select null::monitor.finding from pg_sleep(3) where random() < 0")
        conn.execute("select monitor.register_detector(%s, %s, 'low', 'finding')", (name, f"public.{name}"))
    conn.execute("set statement_timeout = '500ms'")
    started = time.monotonic()
    conn.execute("call monitor.run_all()")
    elapsed = time.monotonic() - started
    conn.execute("reset statement_timeout")
    assert elapsed < 2.5, elapsed
    ledger = Ledger(conn)
    assert ledger.last_run("hang_a")["status"] == "error"
    b = ledger.last_run("hang_b")
    assert b["status"] == "skipped" and "stopped after hang_a was cancelled" in b["error"]


# -- parameters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("detector,params,message", [
    ("duplicate_scan", {"min_count": 3.5}, "a whole number from 2 to 100000"),
    ("duplicate_scan", {"min_count": 2147483648}, "a whole number from 2 to 100000"),
    ("duplicate_scan", {"window": "1000000 years"}, "an interval from 0 to 1 day"),
    ("volume_anomaly", {"baseline_days": 2.5}, "a whole number from 7 to 56"),
    ("detector_health", {"overdue_factor": 1e308}, "a number from 1 to 1000"),
    ("failed_debit", {"lock_timeout": "100 years"}, "an interval from 10 milliseconds to 1 hour"),
    ("failed_debit", {"late_window": "100000 years"}, "an interval from 0 to 7 days"),
    ("failed_debit", {"timeout": "100 years"}, "an interval from 1 second to 1 day"),
    ("failed_debit", {"timeout": "1 microsecond"}, "an interval from 1 second to 1 day"),
    ("failure_rate", {"threshold": 1.5}, "a number from 0 to 1"),
])
def test_parameters_out_of_range_are_refused_naming_the_range(conn, detector, params, message):
    before = conn.execute("select params from monitor.detectors where name = %s", (detector,)).fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute("select monitor.set_params(%s, %s)", (detector, Jsonb(params)))
    assert conn.execute("select params from monitor.detectors where name = %s", (detector,)).fetchone()[0] == before
    key, value = next(iter(params.items()))
    r = invoke("detectors", "set", detector, f"{key}={value}", dsn=with_user(conn.info.dsn, conn.info.user))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert key in r.stderr and message in r.stderr


# -- a half install, and roles created at the same moment elsewhere --------------------------------

def test_a_half_finished_install_is_named_with_exit_3(db, conn):
    conn.execute("delete from monitor.settings where key = 'install.schema'")
    r = invoke("status", dsn=db)
    assert r.returncode == 3 and "monitorctl install" in r.stderr and len(r.stderr.splitlines()) == 1
    assert invoke("install", dsn=db).returncode == 0
    assert invoke("status", dsn=db).returncode == 0


def test_an_install_racing_another_for_the_roles_succeeds():
    """Roles are cluster-wide: an install into one database creates them while another creates them too."""
    from monitorctl import embedded
    server = embedded.start_local(with_cron=False)
    try:
        dsn = server.create_database("racer")
        with psycopg.connect(server.dsn()) as other:   # another install, creating the roles, not yet committed
            other.execute("create role monitor_reader nologin")
            other.execute("create role monitor_operator nologin")
            result = {}
            t = threading.Thread(target=lambda: result.update(r=run_cli("install", "--with-ledger", dsn=dsn)))
            t.start()
            time.sleep(1.5)
            other.commit()
            t.join(120)
        assert result["r"].returncode == 0, result["r"].stderr
    finally:
        server.stop()


# -- what a detector function and the sources may be -----------------------------------------------

def test_a_detector_function_must_resolve_names_only_where_nobody_else_can_create(conn, login_role):
    """A search_path naming a schema others may create in lets them plant a closer overload."""
    role, dsn = login_role()
    conn.execute("create schema shared")
    conn.execute(sql.SQL("grant usage, create on schema shared to {}").format(sql.Identifier(role)))
    conn.execute("create function shared.detect_x(params jsonb, since timestamptz) returns setof monitor.finding"
                 " language sql set search_path = pg_catalog, pg_temp as $$ select null::monitor.finding where false $$")
    conn.execute("alter function shared.detect_x(jsonb, timestamptz) owner to current_user")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"role {role} may create objects in schema shared"):
        conn.execute("select monitor.register_detector('x', 'shared.detect_x', 'low', 'finding')")
    make_detector_function(conn, "uses_shared")
    conn.execute("alter function public.uses_shared(jsonb, timestamptz) set search_path = pg_catalog, shared, pg_temp")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="search_path names schema shared"):
        conn.execute("select monitor.register_detector('uses_shared', 'public.uses_shared', 'low', 'finding')")
    # registered while the schema was safe, then opened up: the run refuses it
    make_detector_function(conn, "later")
    conn.execute("alter function public.later(jsonb, timestamptz) set search_path = pg_catalog, shared, pg_temp")
    conn.execute(sql.SQL("revoke create on schema shared from {}").format(sql.Identifier(role)))
    conn.execute("select monitor.register_detector('later', 'public.later', 'low', 'finding')")
    conn.execute(sql.SQL("grant create on schema shared to {}").format(sql.Identifier(role)))
    Ledger(conn).run("later")
    run = Ledger(conn).last_run("later")
    assert run["status"] == "error" and f"role {role} may create objects in schema shared" in run["error"]
    conn.execute("drop schema shared cascade")


def test_sources_another_role_can_change_are_refused(pg_server, fresh_db, login_role, tmp_path):
    """A view owned by another role could be redefined to call its code as the detectors' reader."""
    role, _dsn = login_role()
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("create table public.cards (id text primary key, balance numeric)")
        c.execute("create table public.tx (id text primary key, card text, amt numeric, st text, at timestamptz)")
        c.execute("create table public.scans (id text primary key, card text, at timestamptz)")
        c.execute("create view public.tx_v as select * from public.tx")
        c.execute(sql.SQL("grant select on public.tx to {}").format(sql.Identifier(role)))
        c.execute(sql.SQL("alter view public.tx_v owner to {}").format(sql.Identifier(role)))
    cfg = tmp_path / "m.toml"
    cfg.write_text("""
[sources.accounts]
relation = "public.cards"
columns = { account_id = "id", balance = "balance" }
[sources.transactions]
relation = "public.tx_v"
columns = { txn_id = "id", account_id = "card", amount = "amt", status = "st", created_at = "at" }
[sources.scans]
relation = "public.scans"
columns = { scan_id = "id", account_id = "card", scanned_at = "at" }
""")
    r = run_cli("install", "--config", str(cfg), dsn=fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("alter view public.tx_v owner to current_user")  # whatever follows, the role can be dropped
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "sources.transactions.relation" in r.stderr and f"view public.tx_v is owned by {role}" in r.stderr
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is None
        # owned by the installer it is accepted; handed over later, every run refuses to read it
        assert run_cli("install", "--config", str(cfg), "--no-schedule", dsn=fresh_db).returncode == 0
        c.execute(sql.SQL("alter view public.tx_v owner to {}").format(sql.Identifier(role)))
        c.execute("select monitor.run_detector('failed_debit')")
        error = c.execute("select error from monitor.detector_runs order by run_id desc limit 1").fetchone()[0]
        assert f"view public.tx_v is owned by {role}" in error
        c.execute("alter view public.tx_v owner to current_user")
        c.execute(sql.SQL("revoke select on public.tx from {}").format(sql.Identifier(role)))
        run_cli("uninstall", "--yes", dsn=fresh_db)


def test_an_operators_rescan_never_moves_the_watermark(conn):
    ledger = Ledger(conn).recent(60)
    ledger.run("failed_debit")
    mark = conn.execute("select high_water from monitor.watermarks where detector = 'failed_debit'").fetchone()
    conn.execute("select monitor.run_detector('failed_debit', now() - interval '1 hour')")
    assert conn.execute("select high_water from monitor.watermarks where detector = 'failed_debit'").fetchone() == mark
    for since in ("'infinity'", "now() + interval '1 day'"):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="must not be in the future"):
            conn.execute(f"select monitor.run_detector('failed_debit', {since})")
    conn.execute("select monitor.run_detector('failed_debit', '-infinity')")  # all history: a full rescan
    assert conn.execute("select high_water from monitor.watermarks where detector = 'failed_debit'").fetchone() == mark


def test_the_database_user_behind_a_transition_is_recorded(db, conn, login_role):
    role, dsn = login_role("monitor_operator")
    event = an_event(conn)
    r = run_cli("resolve", str(event), "--as", "alice", "--note", "refunded", dsn=dsn)
    assert r.returncode == 0, r.stderr
    assert conn.execute("select actor, db_user from monitor.alert_history where event_id = %s"
                        " and transition = 'resolved'", (event,)).fetchone() == ("alice", role)
    shown = run_cli("show", str(event), dsn=db).stdout
    assert f"alice (database user {role})" in shown


def test_control_characters_from_the_database_are_escaped_in_output(db, conn):
    event = an_event(conn)
    conn.execute("select monitor.resolve(array[%s]::bigint[], %s, %s)", (event, "ok \x1b[2J\x1b]0;owned\x07", "eve\x1b[1m"))
    for args in (["show", str(event)], ["events", "--status", "all"]):
        out = run_cli(*args, dsn=db).stdout
        assert "\x1b" not in out and "\x07" not in out, args
    assert "\\x1b[2J" in run_cli("show", str(event), dsn=db).stdout
