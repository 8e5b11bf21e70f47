"""Sources through a mapping file (README.md) onto tables with other names and vocabularies,
in a database that is not pg_cron's (jobs made with cron.schedule_in_database)."""

import subprocess
import sys
import textwrap

import psycopg
import pytest

from monitorctl import mapping
from monitorctl.errors import UsageError
from monitorctl.install import install

APP_TABLES = """
create table public.table_cards (card_id bigint primary key, balance numeric not null);
create index on public.table_cards ((card_id::text));
create table public.app_transaction_log (
    transaction_id bigint primary key, card_id bigint not null, amount_change numeric not null,
    status text not null, previous_balance numeric, new_balance numeric,
    "timestamp" timestamp without time zone not null default (now() at time zone 'UTC'));
-- the ids are bigints read as text, the times UTC clock times: the indexes are on those expressions
create index on public.app_transaction_log ((transaction_id::text));
create index on public.app_transaction_log ((card_id::text), ("timestamp" at time zone 'UTC'));
create index on public.app_transaction_log (("timestamp" at time zone 'UTC'));
create index on public.app_transaction_log (("timestamp" at time zone 'UTC'))
    where (case status when 'completed' then 'success' when 'failed' then 'failed' else 'pending' end) = 'pending';
create index on public.app_transaction_log (("timestamp" at time zone 'UTC'))
    where (case status when 'completed' then 'success' when 'failed' then 'failed' else 'pending' end) = 'failed';
create table public.nfc_scan_log (id bigint primary key, card_id bigint not null,
                                  scanned_at timestamptz not null default now());
create index nfc_scan_log_card_scanned on public.nfc_scan_log ((card_id::text), scanned_at);
create index on public.nfc_scan_log (scanned_at);
"""

CONFIG = """
[sources.transactions]
relation = "public.app_transaction_log"
[sources.transactions.columns]
txn_id = "transaction_id"
account_id = "card_id"
amount = "amount_change"
status = { sql = "case status when 'completed' then 'success' when 'failed' then 'failed' else 'pending' end" }
balance_before = "previous_balance"
balance_after = "new_balance"
created_at = { column = "timestamp", time_zone = "UTC" }
[sources.accounts]
relation = "public.table_cards"
[sources.accounts.columns]
account_id = "card_id"
balance = "balance"
opening_balance = { sql = "0" }
[sources.scans]
relation = "public.nfc_scan_log"
[sources.scans.columns]
scan_id = "id"
account_id = "card_id"
scanned_at = "scanned_at"

[detectors.duplicate_scan]
window = "3 seconds"
"""


def cli(*args, dsn, check=False):
    proc = subprocess.run([sys.executable, "-m", "monitorctl", "--dsn", dsn, *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def app_db(fresh_db, tmp_path):
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(APP_TABLES)
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(CONFIG)
    return fresh_db, cfg


def test_install_through_mapping_and_detect(app_db, pg_server):
    dsn, cfg = app_db
    cli("install", "--config", str(cfg), dsn=dsn, check=True)
    with psycopg.connect(dsn, autocommit=True) as c:
        dbname = c.execute("select current_database()").fetchone()[0]
        c.execute("""insert into table_cards values (1, 40), (2, 100), (3, 0);
                     insert into app_transaction_log (transaction_id, card_id, amount_change, status,
                                                      previous_balance, new_balance) values
                       (10, 1, -10, 'failed', 50, 40),      -- failed debit (and 40 <> 0 + 0: mismatch)
                       (11, 2, 100, 'completed', 0, 100),   -- a top-up: balance matches
                       (12, 3, -5, 'declined', 5, 5);       -- unknown status -> pending
                     insert into nfc_scan_log (id, card_id, scanned_at) values
                       (1, 2, now()), (2, 2, now() + interval '3 seconds'),  -- within 3 s: a burst
                       (3, 3, now()), (4, 3, now() + interval '4 seconds')   -- 4 s: not with window 3 s""")
        c.execute("""insert into table_cards values (4, 0), (5, -3);
                     -- three failed payments within 10 minutes on card 4, and two
                     -- transactions of card 5 one second apart; card 3's pending one is 11 minutes old
                     insert into app_transaction_log (transaction_id, card_id, amount_change, status,
                                                      previous_balance, new_balance, "timestamp") values
                       (20, 4, -1, 'failed', 0, 0, (now() at time zone 'UTC') - interval '9 minutes'),
                       (21, 4, -1, 'failed', 0, 0, (now() at time zone 'UTC') - interval '5 minutes'),
                       (22, 4, -1, 'failed', 0, 0, (now() at time zone 'UTC') - interval '1 minute'),
                       (30, 5, -2, 'completed', 0, -2, (now() at time zone 'UTC') - interval '2 seconds'),
                       (31, 5, -1, 'completed', -2, -3, (now() at time zone 'UTC') - interval '1 second'),
                       (32, 3, -5, 'processing', 0, 0, (now() at time zone 'UTC') - interval '11 minutes')""")
        for name in ("failed_debit", "balance_mismatch", "duplicate_scan", "stuck_pending", "consecutive_failures",
                     "concurrent_txn", "negative_balance"):
            c.execute("select monitor.run_detector(%s)", (name,))
        assert c.execute("select count(*) from monitor.detector_runs where status <> 'ok'").fetchone() == (0,)
        got = set(c.execute("select detector, dedup_key from monitor.events").fetchall())
        assert got == {("failed_debit", "10"), ("balance_mismatch", "1"), ("duplicate_scan", "1"),
                       ("consecutive_failures", "20"), ("concurrent_txn", "30"), ("stuck_pending", "32"),
                       ("negative_balance", "5")}
        assert c.execute("select status from monitor.src_transactions where txn_id = '12'").fetchone() == ("pending",)
        assert c.execute("select params ->> 'window' from monitor.detectors where name = 'duplicate_scan'"
                         ).fetchone() == ("3 seconds",)
    with psycopg.connect(pg_server.dsn(pg_server.cron_database)) as cron:
        jobs = cron.execute("select jobname, database from cron.job where jobname like %s order by 1",
                            (f"monitor.{dbname}.%",)).fetchall()
    assert len(jobs) == 15 and {d for j, d in jobs if not j.endswith(".prune-cron")} == {dbname}
    assert dict(jobs)[f"monitor.{dbname}.prune-cron"] == pg_server.cron_database
    assert f"monitor.{dbname}.failed_debit" in {j for j, _ in jobs}
    # a plain install (an upgrade) keeps the stored mapping
    cli("install", dsn=dsn, check=True)
    with psycopg.connect(dsn) as c:
        assert "app_transaction_log" in c.execute(
            "select obj_description('monitor.src_transactions'::regclass)").fetchone()[0]
    cli("uninstall", "--yes", dsn=dsn, check=True)


@pytest.mark.parametrize("edit,key", [
    (lambda s: s.replace('relation = "public.table_cards"', 'relation = "public.no_such_table"'),
     "sources.accounts.relation"),
    (lambda s: s.replace('amount = "amount_change"', 'amount = "amount_chnage"'),
     "sources.transactions.columns.amount"),
    (lambda s: s.replace('relation = "public.nfc_scan_log"', 'relation = "public.t; drop table x"'),
     "sources.scans.relation"),
    (lambda s: s.replace('scan_id = "id"', 'scan_id = "id"\ncolour = "red"'),
     "sources.scans.columns.colour"),
    (lambda s: s.replace('account_id = "card_id"\nbalance', 'account_id = "card_id"\nbalanse'),
     "sources.accounts.columns.balanse"),
    (lambda s: s.replace('window = "3 seconds"', 'window = "3 parsecs"'), "window"),
])
def test_bad_mapping_is_refused_and_nothing_changes(app_db, edit, key):
    dsn, cfg = app_db
    cfg.write_text(edit(CONFIG))
    proc = cli("install", "--config", str(cfg), dsn=dsn)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("monitorctl:")]
    assert len(errors) == 1 and key in errors[0] and "Traceback" not in proc.stderr
    with psycopg.connect(dsn) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is None


def test_changed_mapping_repoints_views(app_db):
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table public.scans_v2 (scan_ref text primary key, card text, at timestamptz)")
        c.execute("insert into scans_v2 values ('x', '9', now())")
    cfg.write_text(CONFIG.replace('relation = "public.nfc_scan_log"', 'relation = "public.scans_v2"')
                   .replace('scan_id = "id"\naccount_id = "card_id"\nscanned_at = "scanned_at"',
                            'scan_id = "scan_ref"\naccount_id = "card"\nscanned_at = "at"'))
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn) as c:
        assert c.execute("select scan_id, account_id from monitor.src_scans").fetchall() == [("x", "9")]


def test_install_without_mapping_names_both_options(fresh_db):
    proc = cli("install", dsn=fresh_db)
    assert proc.returncode == 2
    assert "--with-ledger" in proc.stderr and "--config" in proc.stderr


def test_shape_checks_need_no_database():
    with pytest.raises(UsageError, match="sources.accounts.relation"):
        mapping.check_shape({"sources": {"accounts": {"relation": "a.b.c", "columns": {}}}})
    with pytest.raises(UsageError, match="unknown key 'notifications'"):
        mapping.check_shape({"notifications": {}})


def test_doctor_names_missing_indexes(app_db):
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    proc = cli("doctor", "--format", "json", dsn=dsn)
    assert proc.returncode == 0, proc.stderr   # APP_TABLES has the indexes the detectors need
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("drop index public.nfc_scan_log_card_scanned")
    proc = cli("doctor", "--format", "json", dsn=dsn)
    assert proc.returncode == 1
    import json
    missing = [r for r in json.loads(proc.stdout) if r["status"] == "missing"]
    assert [(r["relation"], r["columns"]) for r in missing] == [("public.nfc_scan_log", "(card_id::text), scanned_at")]
    assert missing[0]["suggestion"] == 'CREATE INDEX ON public.nfc_scan_log ((card_id::text), scanned_at)'


def test_doctor_asks_the_planner_for_the_partial_indexes_of_one_status(app_db):
    """stuck_pending reads pending rows older than its age: without a partial index on the mapping's own
    status expression, that is every older row. doctor's suggestion is one the planner then uses."""
    import json
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        for (name,) in c.execute("select indexname from pg_indexes where tablename = 'app_transaction_log'"
                                 " and indexdef like '%WHERE%'").fetchall():
            c.execute(f'drop index public."{name}"')
    proc = cli("doctor", "--format", "json", dsn=dsn)
    assert proc.returncode == 1
    missing = {r["columns"]: r for r in json.loads(proc.stdout) if r["status"] == "missing"}
    at = "(\"timestamp\" AT TIME ZONE 'UTC')"
    assert set(missing) == {f"{at} where status = pending", f"{at} where status = failed"}
    pending = missing[f"{at} where status = pending"]
    assert pending["needed_by"] == "stuck_pending"
    assert pending["suggestion"].startswith(f'CREATE INDEX ON public.app_transaction_log ({at}) WHERE (case ')
    with psycopg.connect(dsn, autocommit=True) as c:
        for r in missing.values():
            c.execute(r["suggestion"])
    proc = cli("doctor", "--format", "json", dsn=dsn)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("expression", [
    "1); create table public.pwned (x int); select (1",
    "1); commit; create table public.pwned (x int); select (1",
    "(select 1) ; create table public.pwned (x int)",
])
def test_a_hostile_expression_is_refused_and_runs_nothing(app_db, expression):
    """{ sql = ... } is checked as one statement in a transaction that is rolled back."""
    dsn, cfg = app_db
    cfg.write_text(CONFIG.replace('amount = "amount_change"', f'amount = {{ sql = "{expression}" }}'))
    proc = cli("install", "--config", str(cfg), dsn=dsn)
    assert proc.returncode == 2, proc.stderr
    assert "sources.transactions.columns.amount" in proc.stderr and len(proc.stderr.splitlines()) == 1
    with psycopg.connect(dsn) as c:
        assert c.execute("select to_regclass('public.pwned'), to_regnamespace('monitor')").fetchone() == (None, None)


def test_remapping_to_a_column_of_another_collation_works(app_db):
    """A `name` column and a COLLATE "C" column collate differently from text: the views are replaced."""
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("alter table public.table_cards add column card_name name, add column card_c text collate \"C\"")
        c.execute("update public.table_cards set card_name = card_id::text, card_c = card_id::text")
        c.execute("insert into public.table_cards values (7, -1, '7', '7')")
    for column in ("card_name", "card_c", "card_id"):
        cfg.write_text(CONFIG.replace('account_id = "card_id"\nbalance', f'account_id = "{column}"\nbalance'))
        install(dsn, config=mapping.load(cfg), do_schedule=False)
        with psycopg.connect(dsn, autocommit=True) as c:
            assert c.execute("select account_id from monitor.src_accounts").fetchall() == [("7",)], column
            c.execute("select monitor.run_detector('negative_balance'), monitor.run_detector('volume_anomaly')")
            assert c.execute("select status from monitor.detector_runs order by run_id desc limit 2"
                             ).fetchall() == [("ok",), ("ok",)], column


def test_a_relation_without_its_schema_is_found_in_the_roles_search_path(app_db):
    dsn, cfg = app_db
    cfg.write_text(CONFIG.replace('relation = "public.table_cards"', 'relation = "table_cards"'))
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn) as c:
        assert "table_cards" in c.execute("select pg_get_viewdef('monitor.src_accounts')").fetchone()[0]


def test_without_accounts_updated_at_a_balance_changed_after_its_transaction_is_reconciled(app_db):
    """The card's balance moves in a later transaction than the (failed) transaction that explains it,
    after a run has seen that transaction: without accounts.updated_at only the late window shows it."""
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.table_cards values (1, 10)")
        c.execute("insert into public.app_transaction_log (transaction_id, card_id, amount_change, status,"
                  " previous_balance, new_balance, \"timestamp\") values"
                  " (1, 1, 10, 'completed', 0, 10, now() at time zone 'UTC' - interval '2 hours')")
        c.execute("select monitor.run_detector('balance_mismatch')")
        c.execute("insert into public.app_transaction_log (transaction_id, card_id, amount_change, status,"
                  " previous_balance, new_balance) values (2, 1, -4, 'failed', 10, 6)")
        c.execute("select monitor.run_detector('balance_mismatch')")   # sees transaction 2; the card still 10
        assert c.execute("select count(*) from monitor.events").fetchone()[0] == 0
        c.execute("update public.table_cards set balance = 6 where card_id = 1")  # the failed debit took it
        c.execute("select monitor.run_detector('balance_mismatch')")
        assert c.execute("select subject, amount from monitor.events where detector = 'balance_mismatch'"
                         ).fetchall() == [("1", -4)]


def test_without_updated_at_columns_the_conditions_still_follow_every_change(app_db):
    """negative_balance checks the cards of recent transactions (a balance that moves after its
    transaction was seen included), and failure_rate recounts its window (a row that fails later)."""
    dsn, cfg = app_db
    install(dsn, config=mapping.load(cfg), do_schedule=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select monitor.set_params('failure_rate', '{\"min_volume\": 1, \"threshold\": 0.3}')")
        c.execute("insert into public.table_cards values (1, 10), (2, 5)")
        c.execute("insert into public.app_transaction_log (transaction_id, card_id, amount_change, status,"
                  " previous_balance, new_balance, \"timestamp\") values"
                  " (1, 1, -4, 'completed', 10, 6, now() at time zone 'UTC' - interval '12 minutes'),"
                  " (2, 2, -1, 'declined', 5, 5, now() at time zone 'UTC' - interval '12 minutes'),"
                  " (3, 1, -1, 'completed', 10, 9, now() at time zone 'UTC' - interval '1 minute')")
        run = "select monitor.run_detector('negative_balance'), monitor.run_detector('failure_rate')"
        c.execute(run)
        c.execute(run)                                          # both runs saw every row
        c.execute("update public.table_cards set balance = -3 where card_id = 1")   # moved after its transaction
        c.execute("update public.app_transaction_log set status = 'failed' where transaction_id = 2")
        c.execute(run)
        assert c.execute("select detector, subject from monitor.events where status = 'open' order by 1"
                         ).fetchall() == [("failure_rate", "system"), ("negative_balance", "1")]
        assert c.execute("select evidence ->> 'failed', evidence ->> 'total' from monitor.events"
                         " where detector = 'failure_rate'").fetchone() == ("1", "3")


def test_a_column_that_does_not_take_its_type_is_refused_at_install_naming_the_key(app_db):
    """`amount = "status"` installs nothing: the cast is tried on the table's rows, not left to every run."""
    dsn, cfg = app_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.table_cards values (1, 10)")
        c.execute("insert into public.app_transaction_log (transaction_id, card_id, amount_change, status)"
                  " values (1, 1, -4, 'completed')")
    cfg.write_text(CONFIG.replace('amount = "amount_change"', 'amount = "status"'))
    proc = cli("install", "--config", str(cfg), dsn=dsn)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "sources.transactions.columns.amount" in proc.stderr and "numeric" in proc.stderr
    with psycopg.connect(dsn) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is None


SHAPES = """
create table public.acct (id bigint primary key, bal bigint not null, system boolean not null default false);
create table public.xfer (id bigint primary key, src bigint not null, dst bigint not null, amt bigint not null,
                          state text not null, at timestamptz not null default now());
create view public.xfer_view as select * from public.xfer;
insert into public.acct values (1, -500, true), (2, 300, false), (3, 200, false);
insert into public.xfer values (1, 1, 2, 300, 'DONE', now() - interval '1 minute'),
                               (2, 1, 3, 200, 'DONE', now() - interval '50 seconds');
"""

XFER = """
amount_scale = 100
[sources.accounts]
relation = "public.acct"
[sources.accounts.columns]
account_id = "id"
balance = "bal"
allow_negative = "system"
[sources.transactions]
relation = "public.xfer"
[sources.transactions.columns]
txn_id = "id"
debit_account = "src"
credit_account = "dst"
amount = "amt"
status = { column = "state", map = { DONE = "success" } }
created_at = "at"
[detectors.failure_rate]
enabled = false
"""


@pytest.fixture
def xfer_db(fresh_db, tmp_path):
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(SHAPES)
    cfg = tmp_path / "xfer.toml"
    cfg.write_text(XFER)
    return fresh_db, cfg


def test_status_words_present_but_not_mapped_are_refused_naming_them(xfer_db):
    dsn, cfg = xfer_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.xfer values (3, 2, 3, 5, 'ON_HOLD', now()), (4, 2, 3, 5, 'BOUNCED', now())")
    proc = cli("install", "--config", str(cfg), dsn=dsn)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "'sources.transactions.columns.status'" in proc.stderr
    assert "'BOUNCED', 'ON_HOLD'" in proc.stderr and 'map = { BOUNCED = "..." }' in proc.stderr
    with psycopg.connect(dsn) as c:
        assert c.execute("select to_regnamespace('monitor')").fetchone()[0] is None
    # a plain status column holding words of its own is refused the same way
    cfg.write_text(XFER.replace('status = { column = "state", map = { DONE = "success" } }', 'status = "state"'))
    proc = cli("install", "--config", str(cfg), dsn=dsn)
    assert proc.returncode == 2 and "'DONE'" in proc.stderr and "map each to what it means, one of success" in proc.stderr


def test_a_transfer_is_two_legs_and_the_mapping_turns_off_what_it_cannot_feed(xfer_db):
    dsn, cfg = xfer_db
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 0, proc.stderr
    assert "duplicate_scan is off: the mapping has no scans source" in proc.stderr
    assert "balance_chain is off: the mapping gives transactions no balance_before" in proc.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        legs = c.execute("select txn_id, account_id, amount, leg, is_debit, is_primary from monitor.src_transactions"
                         " order by txn_id, leg desc").fetchall()
        assert [(t, a, float(x), leg, d, p) for t, a, x, leg, d, p in legs] == [
            ("1", "1", -3.0, "debit", True, True), ("1", "2", 3.0, "credit", False, False),
            ("2", "1", -2.0, "debit", True, True), ("2", "3", 2.0, "credit", False, False)]
        off = {r[0] for r in c.execute("select name from monitor.detectors where not enabled")}
        assert off == {"duplicate_scan", "balance_chain", "failure_rate"}  # the last by [detectors.x] enabled
        for name in ("balance_mismatch", "negative_balance", "concurrent_txn"):
            c.execute("select monitor.run_detector(%s)", (name,))
        # world (allow_negative) is negative by design and balanced; two payouts 10 s apart are no burst
        assert c.execute("select count(*) from monitor.events").fetchone() == (0,)
    proc = cli("detectors", "enable", "duplicate_scan", dsn=dsn)
    assert proc.returncode == 2 and "duplicate_scan cannot be enabled: the mapping has no scans source" in proc.stderr
    assert cli("detectors", "enable", "failure_rate", dsn=dsn).returncode == 0


def test_exclude_drops_a_subject_and_resolves_its_open_event(conn, db):
    from tests.ledger import Ledger
    ledger = Ledger(conn).recent()
    ledger.account("W", balance=-5)
    ledger.account("N", balance=-1)
    ledger.run("negative_balance")
    assert sorted(ledger.keys("negative_balance", "open")) == ["N", "W"]
    proc = cli("detectors", "set", "negative_balance", 'exclude=["W"]', dsn=db)
    assert proc.returncode == 0, proc.stderr
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["N"] and ledger.keys("negative_balance", "resolved") == ["W"]
    proc = cli("detectors", "set", "negative_balance", "exclude=[1]", dsn=db)
    assert proc.returncode == 2 and "must be a list of up to 10000 subjects" in proc.stderr
    proc = cli("detectors", "set", "concurrent_txn", "debits_only=maybe", dsn=db)
    assert proc.returncode == 2 and "must be true or false" in proc.stderr


def test_doctor_does_not_suggest_an_index_on_a_view(xfer_db):
    import json
    dsn, cfg = xfer_db
    cfg.write_text(XFER.replace('relation = "public.xfer"', 'relation = "public.xfer_view"'))
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn).returncode == 0
    rows = json.loads(cli("doctor", "--format", "json", dsn=dsn).stdout)
    views = [r for r in rows if r["relation"] == "public.xfer_view"]
    assert views and all(r["status"] == "view" and "CREATE INDEX" not in r["suggestion"] for r in views)
    # the table behind it is a table: its per-account index is asked for on both legs, as text
    table = [r for r in rows if r["relation"] == "public.acct" and r["status"] == "missing"]
    assert [r["suggestion"] for r in table] == ["CREATE INDEX ON public.acct ((id::text))"]


def test_a_clock_time_without_zone_is_read_in_the_zone_the_mapping_names(xfer_db):
    dsn, cfg = xfer_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("alter table public.xfer add column local_at timestamp")
        c.execute("update public.xfer set local_at = at at time zone 'Asia/Tokyo'")
    cfg.write_text(XFER.replace('created_at = "at"', 'created_at = "local_at"'))
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 0 and "warning: config: 'sources.transactions.columns.created_at'" in proc.stderr
    cfg.write_text(XFER.replace('created_at = "at"', 'created_at = { column = "local_at", time_zone = "Asia/Tokyo" }'))
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    with psycopg.connect(dsn) as c:
        assert c.execute("select bool_and(t.created_at = x.at) from monitor.src_transactions t"
                         " join public.xfer x on x.id::text = t.txn_id").fetchone() == (True,)


def test_doctor_says_a_clock_time_without_its_zone_defeats_every_index(app_db):
    """A timestamp without time zone mapped as a plain column is read in the session's zone: a cast
    no index can hold, whatever index the table has. doctor says so, and how to map it."""
    import json
    dsn, cfg = app_db
    cfg.write_text(CONFIG.replace('created_at = { column = "timestamp", time_zone = "UTC" }', 'created_at = "timestamp"'))
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 0 and "warning: config: 'sources.transactions.columns.created_at'" in proc.stderr
    proc = cli("doctor", "--format", "json", dsn=dsn)
    assert proc.returncode == 1
    missing = [r for r in json.loads(proc.stdout) if r["status"] == "missing"]
    assert missing and all("timestamp without time zone read in the session's zone" in r["suggestion"]
                           and 'time_zone = "UTC"' in r["suggestion"] for r in missing)


PAYMENTS = """
create table public.wallet (id text primary key, cents bigint not null);
create table public.pay (id text primary key, wallet text not null, cents bigint not null, state text not null,
                         at timestamptz not null default now());
insert into public.wallet values ('w1', 10000), ('w2', 10000);
insert into public.pay values ('p0', 'w1', 10000, 'ok', now() - interval '1 hour'),
                              ('q0', 'w2', 10000, 'ok', now() - interval '1 hour');
"""
PAY = """
amount_scale = 100
[sources.accounts]
relation = "public.wallet"
[sources.accounts.columns]
account_id = "id"
balance = "cents"
[sources.transactions]
relation = "public.pay"
[sources.transactions.columns]
txn_id = "id"
account_id = "wallet"
amount = "cents"
status = { column = "state", map = { ok = "success", no = "failed" } }
created_at = "at"
"""


@pytest.fixture
def pay_db(fresh_db, tmp_path):
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(PAYMENTS)
    cfg = tmp_path / "pay.toml"
    cfg.write_text(PAY)
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=fresh_db).returncode == 0
    return fresh_db, cfg


def test_failed_debit_on_the_balance_reports_one_unambiguous_payment_once(pay_db):
    """Without balances around a payment, a declined one is judged by its wallet's balance: reported
    when it alone explains what the balance lacks, once, and not again for a later decline."""
    dsn, _ = pay_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.pay values ('p1', 'w1', -1000, 'no', now())")  # declined, took 10.00
        c.execute("update public.wallet set cents = cents - 1000 where id = 'w1'")
        c.execute("insert into public.pay values ('q1', 'w2', -700, 'no', now()), ('q2', 'w2', -700, 'no', now())")
        c.execute("update public.wallet set cents = cents - 700 where id = 'w2'")  # one of the two took it
        c.execute("select monitor.run_detector('failed_debit')")
        assert c.execute("select dedup_key, amount from monitor.events").fetchall() == [("p1", 10)]
        c.execute("insert into public.pay values ('p2', 'w1', -1000, 'no', now())")  # declined, took nothing
        c.execute("select monitor.run_detector('failed_debit')")
        c.execute("select monitor.run_detector('balance_mismatch')")
        got = dict(c.execute("select subject, evidence -> 'explained_by' from monitor.events"
                             " where detector = 'balance_mismatch'").fetchall())
    assert got == {"w1": ["p1", "p2"], "w2": ["q1", "q2"]}  # the candidates are named where one is not sure


def test_a_changed_mapping_drops_what_the_detectors_cached_through_the_old_one(pay_db):
    dsn, cfg = pay_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select monitor.run_detector('balance_mismatch')")
        assert c.execute("select count(*) from monitor.account_totals").fetchone()[0] == 2
    cfg.write_text(PAY.replace("amount_scale = 100", "amount_scale = 1000"))
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn).returncode == 0
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.pay values ('p1', 'w1', -500, 'ok', now())")
        c.execute("update public.wallet set cents = cents - 500 where id = 'w1'")
        c.execute("select monitor.run_detector('balance_mismatch')")
        assert c.execute("select count(*) from monitor.events").fetchone()[0] == 0
        assert c.execute("select balance from monitor.src_accounts where account_id = 'w1'").fetchone()[0] == 9.5


def test_time_zone_is_for_clock_times_only(pay_db):
    dsn, cfg = pay_db
    cfg.write_text(PAY.replace('created_at = "at"', 'created_at = { column = "at", time_zone = "Europe/Paris" }'))
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 2 and "'sources.transactions.columns.created_at.time_zone'" in proc.stderr
    assert "timestamp with time zone, not a timestamp without time zone" in proc.stderr


def test_a_detector_the_user_turned_off_stays_off_when_the_mapping_feeds_it_again(xfer_db):
    dsn, cfg = xfer_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table public.scan (id text primary key, card text not null, at timestamptz not null)")
    with_scans = XFER + '[sources.scans]\nrelation = "public.scan"\n[sources.scans.columns]\n' \
                        'scan_id = "id"\naccount_id = "card"\nscanned_at = "at"\n'
    cfg.write_text(with_scans)
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn).returncode == 0
    assert cli("detectors", "disable", "duplicate_scan", "concurrent_txn", dsn=dsn).returncode == 0
    cfg.write_text(XFER)  # no scans: duplicate_scan off
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn).returncode == 0
    cfg.write_text(with_scans)
    proc = cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn)
    assert proc.returncode == 0 and "duplicate_scan is on again" not in proc.stderr
    with psycopg.connect(dsn) as c:
        assert c.execute("select enabled from monitor.detectors where name = 'duplicate_scan'").fetchone() == (False,)


def test_both_sides_watched_a_transfers_legs_are_bursts_of_their_own(xfer_db):
    dsn, cfg = xfer_db
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=dsn).returncode == 0
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.acct values (4, 100, false), (5, 0, false)")
        c.execute("insert into public.xfer values (10, 4, 5, 10, 'DONE', now()), (11, 4, 5, 10, 'DONE', now()),"
                  " (12, 4, 4, 5, 'DONE', now() - interval '10 seconds')")  # and a self-transfer
        c.execute("""select monitor.set_params('concurrent_txn', '{"debits_only": false}')""")
        c.execute("select monitor.run_detector('concurrent_txn')")
        got = sorted(c.execute("select subject, dedup_key from monitor.events").fetchall())
    # the payer's two debits, the payee's two credits, the self-transfer's two legs: three bursts
    assert got == [("4", "10:debit"), ("4", "12:credit"), ("5", "10:credit")]


JOURNAL = """
create table public.entry (id bigint primary key, state text not null, changed_at timestamptz not null);
create table public.posting (id bigint primary key, entry_id bigint not null, account text not null,
                             amount numeric not null, at timestamptz not null);
create table public.ac (id text primary key, balance numeric not null);
insert into public.ac values ('payer', 0), ('payee', 0), ('fees', 0);
insert into public.entry values (1, 'draft', now() - interval '1 hour');
insert into public.posting values (1, 1, 'payer', -10, now() - interval '1 hour'),
                                  (2, 1, 'payee', 9.8, now() - interval '1 hour'),
                                  (3, 1, 'fees', 0.2, now() - interval '1 hour');
"""
JOURNAL_MAP = """
[sources.accounts]
relation = "public.ac"
[sources.accounts.columns]
account_id = "id"
balance = "balance"
[sources.transactions]
relation = "public.posting"
[sources.transactions.columns]
txn_id = "entry_id"
account_id = "account"
amount = "amount"
primary = { sql = "s.amount < 0" }
status = { sql = "(select e.state from public.entry e where e.id = s.entry_id)", map = { posted = "success", draft = "pending", voided = "failed" } }
created_at = "at"
updated_at = { sql = "(select e.changed_at from public.entry e where e.id = s.entry_id)" }
"""


def test_a_journal_entry_with_several_postings_is_one_transaction(fresh_db, tmp_path):
    """A header with postings: txn_id is the entry, `primary` names the posting that stands for it,
    and a status read from the header through a subquery is followed when it changes."""
    import json
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(JOURNAL)
    cfg = tmp_path / "journal.toml"
    cfg.write_text(JOURNAL_MAP)
    assert cli("install", "--config", str(cfg), "--no-schedule", dsn=fresh_db).returncode == 0
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("select monitor.run_detector('stuck_pending')")
        assert c.execute("select subject, dedup_key from monitor.events").fetchall() == [("payer", "1")]
        assert c.execute("select count(*) from monitor.src_transactions where row_xmin is not null").fetchone() == (0,)
        c.execute("select monitor.run_detector('failed_debit')")
        # the header is voided an hour later, and the money had moved anyway: the postings do not change
        c.execute("update public.entry set state = 'voided', changed_at = now()")
        c.execute("update public.ac set balance = case id when 'payer' then -10 when 'payee' then 9.8 else 0.2 end")
        c.execute("select monitor.run_detector('failed_debit')")
        assert c.execute("select subject, dedup_key from monitor.events where detector = 'failed_debit'"
                         ).fetchall() == [("payer", "1")]
    advice = json.loads(cli("doctor", "--format", "json", dsn=fresh_db).stdout)
    status = [a for a in advice if "where status" in a["columns"]]
    assert status and all(a["status"] == "expression" and "subquery" in a["suggestion"] for a in status)
