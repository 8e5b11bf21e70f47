"""The runner's promises (docs/architecture.md): dedup, lifecycle, late rows, crashes, timeouts, locks."""

import json
import threading
import time

import psycopg
import pytest

from tests.ledger import Ledger


@pytest.fixture
def ledger(conn):
    return Ledger(conn).recent(120)


def register_sql_detector(conn, name, body, kind="finding", severity="high", language="sql"):
    conn.execute(f"""create or replace function public.{name}(params jsonb, since timestamptz)
                     returns setof monitor.finding language {language}
                     set search_path = pg_catalog, monitor, pg_temp as $fn$ {body} $fn$""")
    conn.execute("select monitor.register_detector(%s, %s, %s, %s)", (name, f"public.{name}", severity, kind))


def test_rerun_on_unchanged_data_creates_nothing(ledger):
    ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=40)
    ledger.scan("s1", "A", at=0)
    ledger.scan("s2", "A", at=1)
    assert ledger.run("failed_debit") == 1 and ledger.run("duplicate_scan") == 1
    for _ in range(3):
        assert ledger.run("failed_debit") == 0 and ledger.run("duplicate_scan") == 0
    since_week = ledger.conn.execute("select now() - interval '7 days'").fetchone()[0]
    assert ledger.run("failed_debit", since_week) == 0  # a rescan does not duplicate either
    assert len(ledger.events("failed_debit")) == 1 and len(ledger.events("duplicate_scan")) == 1
    assert ledger.events("failed_debit")[0]["occurrences"] == 5


def test_finding_resolved_by_a_person_is_not_reopened(ledger, conn):
    ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=40)
    ledger.run("failed_debit")
    [ev] = ledger.events("failed_debit")
    conn.execute("select monitor.resolve(array[%s]::bigint[], 'refunded', 'alice')", (ev["event_id"],))
    since_week = conn.execute("select now() - interval '7 days'").fetchone()[0]
    assert ledger.run("failed_debit") == 0
    assert ledger.run("failed_debit", since_week) == 0
    [ev] = ledger.events("failed_debit")
    assert ev["status"] == "resolved" and ev["resolved_by"] == "alice"
    assert ledger.history(ev["event_id"]) == ["opened", "resolved"]


def test_condition_recurs_as_a_new_event(ledger, conn):
    ledger.account("A", balance=-5)
    ledger.run("negative_balance")
    conn.execute("update ledger.accounts set balance = 5 where account_id = 'A'")
    ledger.run("negative_balance")
    conn.execute("update ledger.accounts set balance = -7 where account_id = 'A'")
    assert ledger.run("negative_balance") == 1
    evs = ledger.events("negative_balance")
    assert [e["status"] for e in evs] == ["resolved", "open"] and evs[1]["amount"] == -7


def test_late_row_within_late_window_is_examined(ledger, conn):
    ledger.recent(60)
    ledger.txn("t_now", "A", status="success", at=55)
    ledger.run("failed_debit")                    # watermark: now
    # committed after that run, stamped 4 minutes before it
    conn.execute("""insert into ledger.transactions (txn_id, account_id, amount, status, balance_before,
                    balance_after, created_at, updated_at)
                    values ('late', 'A', -9, 'failed', 20, 11, now() - interval '4 minutes',
                            now() - interval '4 minutes')""")
    assert ledger.run("failed_debit") == 1
    assert ledger.keys("failed_debit") == ["late"]


def test_late_window_rows_already_seen_are_skipped_changed_ones_are_not(ledger, conn):
    ledger.scan("s1", "A", at=100)
    ledger.scan("s2", "A", at=101)
    assert ledger.run("duplicate_scan") == 1
    assert conn.execute("select seen_xmin is not null from monitor.watermarks"
                        " where detector = 'duplicate_scan'").fetchone()[0]
    ledger.run("duplicate_scan")                  # the burst is in the late window, but this run saw it
    assert ledger.events("duplicate_scan")[0]["occurrences"] == 1
    # a change to a row (a new row version, written after the last run) is examined again
    conn.execute("update ledger.scans set device_id = 'gate-9' where scan_id = 's2'")
    ledger.run("duplicate_scan")
    [ev] = ledger.events("duplicate_scan")
    assert ev["occurrences"] == 2 and "gate-9" in ev["evidence"]["devices"]


def test_late_committed_transaction_is_reconciled(ledger, conn):
    ledger.account("A", balance=100, opening=100)
    ledger.txn("t1", "A", amount=0, at=100)
    assert ledger.run("balance_mismatch") == 0
    ledger.run("balance_mismatch")                # the previous run saw everything: nothing new to check
    # committed after those runs, stamped 4 minutes before them, and never applied to the balance
    conn.execute("""insert into ledger.transactions (txn_id, account_id, amount, status, created_at, updated_at)
                    values ('late', 'A', 30, 'success', now() - interval '4 minutes', now() - interval '4 minutes')""")
    assert ledger.run("balance_mismatch") == 1
    [ev] = ledger.events("balance_mismatch")
    assert ev["subject"] == "A" and float(ev["amount"]) == -30


def test_rescan_examines_a_seen_burst_again(ledger, conn):
    ledger.scan("s1", "A", at=100)
    ledger.scan("s2", "A", at=101)
    ledger.run("duplicate_scan")
    ledger.run("duplicate_scan")                  # skipped: seen
    since = conn.execute("select now() - interval '1 hour'").fetchone()[0]
    ledger.run("duplicate_scan", since)           # a --since rescan does not skip
    assert ledger.events("duplicate_scan")[0]["occurrences"] == 2
    ledger.run("duplicate_scan")                  # and keeps the previous run's mark
    assert ledger.events("duplicate_scan")[0]["occurrences"] == 2


def test_late_row_joining_a_seen_burst_updates_it(ledger, conn):
    ledger.scan("s1", "A", at=100)
    ledger.scan("s2", "A", at=101)
    assert ledger.run("duplicate_scan") == 1
    ledger.scan("s3", "A", at=103)                # committed after the run, within the window of s2
    assert ledger.run("duplicate_scan") == 0
    [ev] = ledger.events("duplicate_scan")
    assert ev["dedup_key"] == "s1" and ev["evidence"]["scans"] == 3 and ev["occurrences"] == 2


def test_custom_detector_can_skip_rows_seen_before(ledger, conn):
    register_sql_detector(conn, "big_debit", """
        select t.account_id, t.txn_id, t.txn_id, t.amount, 'big', '{}'::jsonb
          from monitor.src_transactions t
         where t.created_at >= since and t.amount < -100
           and (age(t.row_xmin) <= monitor.seen_age(params)) is not false""")
    ledger.txn("t1", "A", amount=-500, at=100)
    assert ledger.run("big_debit") == 1
    ledger.run("big_debit")
    assert ledger.events("big_debit")[0]["occurrences"] == 1
    ledger.txn("t2", "A", amount=-700, at=10)      # late: stamped before the last run, written after it
    assert ledger.run("big_debit") == 1


def test_custom_detector_of_0_1_0_reads_its_whole_late_window(ledger, conn):
    register_sql_detector(conn, "big_debit", """
        select t.account_id, t.txn_id, t.txn_id, t.amount, 'big', '{}'::jsonb
          from monitor.src_transactions t
         where t.created_at >= since and t.amount < -100
           and (age(t.row_xmin) <= monitor.seen_age()) is not false""")
    ledger.txn("t1", "A", amount=-500, at=100)
    assert ledger.run("big_debit") == 1
    ledger.run("big_debit")                        # seen again: counted again, as in 0.1.0
    assert ledger.events("big_debit")[0]["occurrences"] == 2


def test_a_detector_called_by_hand_answers_as_in_its_run(ledger, conn):
    """The run state is the parameter `seen`: without it, a call reads everything from since."""
    ledger.scan("s1", "A", at=100)
    ledger.scan("s2", "A", at=101)
    assert ledger.run("duplicate_scan") == 1
    run = ledger.last_run("duplicate_scan")
    params, seen = conn.execute("select d.params, w.seen_xmin::text from monitor.detectors d"
                                " join monitor.watermarks w on w.detector = d.name"
                                " where d.name = 'duplicate_scan'").fetchone()
    by_hand = "select count(*) from monitor.detect_duplicate_scan(%s::jsonb || %s::jsonb, %s)"
    import json
    assert conn.execute(by_hand, (json.dumps(params), "{}", run["since"])).fetchone()[0] == 1
    # with the mark of the run that saw both scans, the burst holds nothing new: nothing to report
    assert conn.execute(by_hand, (json.dumps(params), json.dumps({"seen": seen}), run["since"])).fetchone()[0] == 0


def test_source_view_without_xmin_reads_the_whole_late_window(db, conn):
    conn.execute("create view public.scan_view as select * from ledger.scans")
    from monitorctl import mapping
    from monitorctl.install import install
    config = mapping.ledger_mapping()
    config["sources"]["scans"]["relation"] = "public.scan_view"
    install(db, config=config, do_schedule=False)
    assert conn.execute("select count(*) from monitor.src_scans where row_xmin is not null").fetchone()[0] == 0
    ledger = Ledger(conn).recent(120)
    ledger.scan("s1", "A", at=100)
    ledger.scan("s2", "A", at=101)
    ledger.run("duplicate_scan")
    ledger.run("duplicate_scan")                  # no xmin to tell what was seen: examined again
    assert ledger.events("duplicate_scan")[0]["occurrences"] == 2


def test_severity_change_is_a_transition(ledger, conn):
    ledger.account("A", balance=-5)
    ledger.run("negative_balance")
    conn.execute("update monitor.detectors set severity = 'critical' where name = 'negative_balance'")
    ledger.run("negative_balance")
    [ev] = ledger.events("negative_balance")
    assert ev["severity"] == "critical" and ev["occurrences"] == 2
    assert ledger.history(ev["event_id"]) == ["opened", "severity_changed"]


def test_error_is_recorded_and_run_all_goes_on(db, conn, ledger):
    register_sql_detector(conn, "aaa_broken", "begin raise exception 'broken on purpose'; end", language="plpgsql")
    ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=40)
    conn.execute("call monitor.run_all()")
    assert "broken on purpose" in ledger.last_run("aaa_broken")["error"]
    assert ledger.last_run("failed_debit")["status"] == "ok"
    assert ledger.keys("failed_debit") == ["t1"]


def test_statement_timeout_is_caught_and_recorded(conn, ledger):
    register_sql_detector(conn, "sleepy", "begin perform pg_sleep(5); end", language="plpgsql")
    with conn.transaction():
        conn.execute("set local statement_timeout = '300ms'")
        assert ledger.run("sleepy") == 0          # returns normally
    run = ledger.last_run("sleepy")
    assert run["status"] == "error" and "statement timeout" in run["error"]


def test_concurrent_run_is_skipped(db, conn, ledger):
    with psycopg.connect(db) as holder:           # a run in progress holds the detector's lock
        holder.execute("select monitor.run_detector('failed_debit')")
        assert ledger.run("failed_debit") == 0
        assert ledger.last_run("failed_debit")["status"] == "skipped"
        holder.rollback()
    assert ledger.run("failed_debit") == 0
    assert ledger.last_run("failed_debit")["status"] == "ok"


def test_backend_killed_mid_run_leaves_nothing_and_next_run_completes(db, conn, ledger):
    for i in range(10):
        ledger.txn(f"t{i}", f"A{i}", amount=-1, status="failed", before=5, after=4)
    # make each event insert slow, so the run is killed half way through writing events
    conn.execute("""create function public.slow_insert() returns trigger language plpgsql as
                    $$ begin perform pg_sleep(0.2); return new; end $$""")
    conn.execute("create trigger slow after insert on monitor.events for each row execute function public.slow_insert()")
    victim = psycopg.connect(db, autocommit=True)
    pid = victim.info.backend_pid
    t = threading.Thread(target=lambda: _swallow(victim.execute, "select monitor.run_detector('failed_debit')"))
    t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if conn.execute("select count(*) from pg_stat_activity where pid = %s and query like '%%run_detector%%'"
                        " and wait_event = 'PgSleep'", (pid,)).fetchone()[0]:
            break
        time.sleep(0.05)
    time.sleep(0.5)                               # a few events written inside the transaction
    conn.execute("select pg_terminate_backend(%s)", (pid,))
    t.join(10)
    assert ledger.events("failed_debit") == []
    assert conn.execute("select count(*) from monitor.alert_history").fetchone()[0] == 0
    conn.execute("drop trigger slow on monitor.events")
    assert ledger.run("failed_debit") == 10


def _swallow(fn, *args):
    try:
        fn(*args)
    except psycopg.Error:
        pass


def test_notify_after_commit(db, conn, ledger):
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("listen monitor_events")
        ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=40)
        ledger.run("failed_debit")
        [note] = list(listener.notifies(timeout=5, stop_after=1))
    payload = json.loads(note.payload)
    assert payload["detector"] == "failed_debit" and payload["transition"] == "opened"
    assert payload["severity"] == "critical" and payload["event_id"] == ledger.events("failed_debit")[0]["event_id"]


def test_detector_without_function_does_not_pretend(conn, ledger):
    conn.execute("insert into monitor.detectors (name, severity, kind, function) values"
                 " ('ghost', 'low', 'finding', 'public.nothing_here')")
    assert ledger.run("ghost") == 0
    run = ledger.last_run("ghost")
    assert run["status"] == "error" and "does not exist" in run["error"]


def test_custom_detector_runs_and_dedups_like_a_builtin(conn, ledger):
    register_sql_detector(conn, "big_topup", """
        select t.account_id, t.txn_id, t.txn_id, t.amount, 'top-up over 1000', to_jsonb(t)
          from monitor.src_transactions t
         where t.created_at >= since and t.amount > coalesce((params ->> 'limit')::numeric, 1000)""")
    ledger.txn("big", "A", amount=5000, status="success")
    assert ledger.run("big_topup") == 1
    assert ledger.run("big_topup") == 0
    [ev] = ledger.events("big_topup")
    assert (ev["dedup_key"], ev["severity"], ev["kind"]) == ("big", "high", "finding")


def test_register_detector_refuses_bad_function(conn):
    conn.execute("create function public.wrong(params jsonb, since timestamptz) returns setof int"
                 " language sql as $$ select 1 $$")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must return SETOF monitor.finding"):
        conn.execute("select monitor.register_detector('wrong', 'public.wrong', 'low', 'finding')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="does not exist"):
        conn.execute("select monitor.register_detector('nope', 'public.nope', 'low', 'finding')")


@pytest.mark.parametrize("params,message", [
    ({"window": "5 parsecs"}, "must be an interval from 0 to 1 day"),
    ({"windw": "5 seconds"}, "unknown parameter"),
    ({"min_count": "two"}, "must be a whole number from 2 to 100000"),
    ({"min_count": -1}, "must be a whole number from 2 to 100000"),
])
def test_bad_parameters_are_refused(conn, params, message):
    from psycopg.types.json import Jsonb
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute("select monitor.set_params('duplicate_scan', %s)", (Jsonb(params),))
    stored = conn.execute("select params ->> 'window' from monitor.detectors where name = 'duplicate_scan'").fetchone()
    assert stored == ("5 seconds",)
