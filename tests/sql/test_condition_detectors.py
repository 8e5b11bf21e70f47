"""balance_mismatch, negative_balance, stuck_pending, failure_rate, volume_anomaly, detector_health."""

from datetime import timedelta

import pytest


def test_balance_mismatch_positive_and_auto_resolve(ledger, conn):
    ledger.account("A", balance=90, opening=100)
    ledger.txn("t1", "A", amount=-20, status="success")
    assert ledger.run("balance_mismatch") == 1
    [ev] = ledger.events("balance_mismatch")
    assert (ev["subject"], ev["dedup_key"], ev["amount"]) == ("A", "A", 10)
    assert ev["evidence"]["expected"] == 80
    conn.execute("update ledger.accounts set balance = 80 where account_id = 'A'")
    ledger.run("balance_mismatch")
    [ev] = ledger.events("balance_mismatch")
    assert ev["status"] == "resolved" and ev["resolved_by"] == "auto"
    assert ledger.history(ev["event_id"]) == ["opened", "auto_resolved"]


def test_balance_mismatch_negative(ledger):
    ledger.account("A", balance=80, opening=100)
    ledger.txn("t1", "A", amount=-20, status="success")
    ledger.txn("t2", "A", amount=-50, status="failed")   # failed and pending rows do not count
    ledger.txn("t3", "A", amount=-30, status="pending")
    assert ledger.run("balance_mismatch") == 0


def test_balance_mismatch_tolerance_boundary(ledger):
    ledger.account("A", balance=100.01, opening=100)  # exactly the tolerance: not a mismatch
    ledger.account("B", balance=100.02, opening=100)  # over it: a mismatch
    assert ledger.run("balance_mismatch") == 1
    assert ledger.keys("balance_mismatch") == ["B"]


def test_balance_mismatch_incremental_totals(ledger, conn):
    ledger.account("A", balance=100, opening=100)
    assert ledger.run("balance_mismatch") == 0               # first run: full pass
    ledger.recent(60)
    ledger.txn("t1", "A", amount=-30, status="success")      # new row, balance kept in step
    conn.execute("update ledger.accounts set balance = 70 where account_id = 'A'")
    assert ledger.run("balance_mismatch") == 0
    ledger.txn("t2", "A", amount=-5, status="success")       # balance not updated: mismatch of 5
    assert ledger.run("balance_mismatch") == 1
    assert ledger.events("balance_mismatch")[0]["amount"] == 5


def test_balance_mismatch_old_row_changed_is_recounted(ledger, conn):
    ledger.account("A", balance=100, opening=100)
    ledger.txn("t1", "A", amount=-30, status="pending", at=-7200)
    assert ledger.run("balance_mismatch") == 0
    conn.execute("update ledger.transactions set status = 'success' where txn_id = 't1'")  # balance not moved
    assert ledger.run("balance_mismatch") == 1


def test_negative_balance(ledger, conn):
    ledger.account("A", balance=-0.01)
    ledger.account("B", balance=0)      # zero is not negative
    assert ledger.run("negative_balance") == 1
    [ev] = ledger.events("negative_balance")
    assert (ev["subject"], str(ev["amount"])) == ("A", "-0.01")
    conn.execute("update ledger.accounts set balance = 5 where account_id = 'A'")
    ledger.run("negative_balance")
    assert ledger.events("negative_balance")[0]["status"] == "resolved"


def test_stuck_pending_boundary(conn, ledger):
    # one transaction, so now() is the run time: exactly 10 minutes is not "more than" 10 minutes
    with conn.transaction():
        conn.execute("insert into ledger.accounts (account_id) values ('A')")
        conn.execute("""insert into ledger.transactions (txn_id, account_id, amount, status, created_at) values
                        ('exact', 'A', -3, 'pending', now() - interval '10 minutes'),
                        ('older', 'A', -4, 'pending', now() - interval '10 minutes 0.001 seconds'),
                        ('done',  'A', -5, 'success', now() - interval '1 hour')""")
        assert ledger.run("stuck_pending") == 1
    [ev] = ledger.events("stuck_pending")
    assert (ev["dedup_key"], ev["txn_id"], ev["amount"]) == ("older", "older", -4)


def test_stuck_pending_resolves_when_settled(conn, ledger):
    ledger.txn("p1", "A", amount=-3, status="pending", at=0)
    assert ledger.run("stuck_pending") == 1
    conn.execute("update ledger.transactions set status = 'success' where txn_id = 'p1'")
    ledger.run("stuck_pending")
    assert ledger.events("stuck_pending")[0]["status"] == "resolved"


def test_stuck_pending_between_full_passes_reads_the_rows_that_came_of_age(conn, ledger):
    """Between full passes a run reads the rows that came of age since the previous one and those of
    its open events, not every old row: the ledger's old pending row, inserted after the first run with
    its old time, waits for the full pass; the one that comes of age is found at once."""
    ledger.set_params("stuck_pending", age="1 second")
    ledger.recent(0)
    ledger.account_exists("A")
    ledger.run("stuck_pending")                               # a full pass: nothing pending yet
    ledger.txn("old", "A", status="pending", at=-3600)        # written now, an hour back
    conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, created_at)"
                 " values ('young', 'A', -1, 'pending', now())")
    import time
    time.sleep(1.2)
    ledger.run("stuck_pending")
    assert ledger.keys("stuck_pending") == ["young"]
    conn.execute("delete from monitor.watermarks where detector = 'stuck_pending.full'")  # the hour is up
    ledger.run("stuck_pending")
    assert sorted(ledger.keys("stuck_pending", "open")) == ["old", "young"]


def test_stuck_pending_between_full_passes_still_reads_a_row_committed_late(conn, ledger):
    """A row committed with a creation time up to late_window (5 minutes) back is read by the next
    run, as every detector's late rows are, not left to the full pass."""
    ledger.set_params("stuck_pending", age="1 second")
    ledger.account_exists("A")
    ledger.run("stuck_pending")                               # a full pass
    conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, created_at)"
                 " values ('late', 'A', -1, 'pending', now() - interval '4 minutes')")
    ledger.run("stuck_pending")                               # between full passes
    assert ledger.keys("stuck_pending") == ["late"]


def insert_rate_rows(conn, ok, failed, at_sql="now() - interval '1 minute'"):
    conn.execute("insert into ledger.accounts (account_id) values ('R') on conflict do nothing")
    conn.execute(f"""insert into ledger.transactions (txn_id, account_id, amount, status, created_at)
                     select 'r' || g, 'R', -1, case when g <= %s then 'failed' else 'success' end, {at_sql}
                     from generate_series(1, %s) g""", (failed, ok + failed))


def test_failure_rate_positive(conn, ledger):
    insert_rate_rows(conn, ok=18, failed=2)   # 10% of 20
    assert ledger.run("failure_rate") == 1
    [ev] = ledger.events("failure_rate")
    assert (ev["subject"], ev["dedup_key"]) == ("system", "system")
    assert ev["evidence"]["failed"] == 2 and ev["evidence"]["total"] == 20


def test_failure_rate_below_min_volume(conn, ledger):
    insert_rate_rows(conn, ok=10, failed=9)   # 19 < 20 transactions
    assert ledger.run("failure_rate") == 0


def test_failure_rate_threshold_boundary(conn, ledger):
    insert_rate_rows(conn, ok=19, failed=1)   # exactly 5%: not above
    assert ledger.run("failure_rate") == 0


def test_failure_rate_window_boundary(conn, ledger):
    with conn.transaction():                  # rows at exactly now() - 15 minutes are in the window
        insert_rate_rows(conn, ok=15, failed=5, at_sql="now() - interval '15 minutes'")
        assert ledger.run("failure_rate") == 1
    conn.execute("truncate ledger.transactions")
    conn.execute("select monitor.resolve(array(select event_id from monitor.events), 'test')")
    with conn.transaction():
        insert_rate_rows(conn, ok=15, failed=5, at_sql="now() - interval '15 minutes 0.001 seconds'")
        assert ledger.run("failure_rate") == 0


def seed_volume(conn, counts_by_weeks_back: dict[int, int], current: int):
    """Transactions in the last complete UTC hour and in the same hour 1..4 weeks earlier."""
    conn.execute("insert into ledger.accounts (account_id) values ('V') on conflict do nothing")
    hour = "date_trunc('hour', now() at time zone 'UTC') - interval '1 hour'"
    for weeks, n in list(counts_by_weeks_back.items()) + [(0, current)]:
        conn.execute(f"""insert into ledger.transactions (txn_id, account_id, amount, status, created_at)
                         select 'v{weeks}_' || g, 'V', -1, 'success',
                                (({hour}) - make_interval(days => 7 * %s) + make_interval(secs => g))
                                    at time zone 'UTC'
                         from generate_series(1, %s) g""", (weeks, n))
    # data starts four weeks back, so every sample counts
    conn.execute(f"""insert into ledger.transactions (txn_id, account_id, amount, status, created_at)
                     values ('v_start', 'V', -1, 'success', (({hour}) - interval '29 days') at time zone 'UTC')""")


def test_volume_anomaly_fires_on_drop(conn, ledger):
    seed_volume(conn, {1: 100, 2: 104, 3: 96, 4: 100}, current=20)   # an 80% drop
    assert ledger.run("volume_anomaly") == 1
    [ev] = ledger.events("volume_anomaly")
    assert ev["evidence"]["observed"] == 20 and len(ev["evidence"]["samples"]) == 4


def test_volume_anomaly_quiet_on_normal_hour(conn, ledger):
    seed_volume(conn, {1: 100, 2: 104, 3: 96, 4: 100}, current=90)
    assert ledger.run("volume_anomaly") == 0
    assert ledger.last_run("volume_anomaly")["status"] == "ok"


def test_volume_anomaly_boundary(conn, ledger):
    # mean 100, sample stddev 0, 4 samples -> allowed 3 * max(0, sqrt(100), 1) * sqrt(1 + 1/4) = 33.54
    seed_volume(conn, {1: 100, 2: 100, 3: 100, 4: 100}, current=67)   # 33 off: quiet
    assert ledger.run("volume_anomaly") == 0
    conn.execute("delete from ledger.transactions where txn_id = 'v0_1'")  # 34 off: fires
    assert ledger.run("volume_anomaly") == 1
    assert float(ledger.events("volume_anomaly")[0]["evidence"]["allowed_deviation"]) == 33.54


def test_volume_anomaly_needs_min_samples(conn, ledger):
    conn.execute("insert into ledger.accounts (account_id) values ('V')")
    seed_volume(conn, {1: 100}, current=0)
    conn.execute("delete from ledger.transactions where txn_id = 'v_start'")  # data starts a week back
    assert ledger.run("volume_anomaly") == 0


def test_detector_health_failed_run(conn, ledger):
    conn.execute("update monitor.detectors set scheduled = true")
    conn.execute("""create function public.broken(params jsonb, since timestamptz) returns setof monitor.finding
                    language plpgsql set search_path = pg_catalog, pg_temp
                    as $$ begin raise exception 'boom'; end $$""")
    conn.execute("select monitor.register_detector('broken', 'public.broken', 'low', 'condition')")
    conn.execute("update monitor.detectors set scheduled = true where name = 'broken'")
    assert ledger.run("broken") == 0
    assert ledger.last_run("broken")["status"] == "error"
    assert ledger.run("detector_health") >= 1
    assert "broken" in ledger.keys("detector_health")
    [ev] = [e for e in ledger.events("detector_health") if e["dedup_key"] == "broken"]
    assert "boom" in ev["summary"] and ev["severity"] == "high"


def test_detector_health_overdue_boundary(conn, ledger):
    conn.execute("update monitor.detectors set scheduled = (name = 'negative_balance')")
    with conn.transaction():  # enabled exactly 3 minutes ago on a every-minute schedule: not yet overdue
        conn.execute("update monitor.detectors set enabled_at = now() - interval '3 minutes'"
                     " where name = 'negative_balance'")
        assert ledger.run("detector_health") == 0
    with conn.transaction():
        conn.execute("update monitor.detectors set enabled_at = now() - interval '3 minutes 1 second'"
                     " where name = 'negative_balance'")
        assert ledger.run("detector_health") == 1
    assert ledger.keys("detector_health") == ["negative_balance"]
    ledger.run("negative_balance")               # a completed run: healthy again
    ledger.run("detector_health")
    assert ledger.events("detector_health")[0]["status"] == "resolved"


def test_detector_health_unscheduled_not_judged(conn, ledger):
    conn.execute("update monitor.detectors set scheduled = false, enabled_at = now() - interval '1 day'")
    assert ledger.run("detector_health") == 0


@pytest.mark.parametrize("schedule,gap", [
    ("* * * * *", "00:01:00"), ("*/5 * * * *", "00:05:00"), ("5 * * * *", "01:00:00"),
    ("0 3 * * *", "1 day"), ("0 9-17 * * 1-5", "2 days 16:00:00"), ("30 seconds", "00:00:30"),
])
def test_cron_max_gap(conn, schedule, gap):
    got = conn.execute("select monitor.cron_max_gap(%s) = %s::interval", (schedule, gap)).fetchone()[0]
    assert got, schedule


def rows_read(conn, relation: str, detector: str) -> int:
    """Rows of `relation` one run of `detector` read: the growth of the backend's table statistics
    over the run, inside one transaction (they may still hold earlier transactions' counts)."""
    counted = ("select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
               " from pg_stat_xact_user_tables where relid = %s::regclass")
    with conn.transaction():
        before = conn.execute(counted, (relation,)).fetchone()[0]
        conn.execute("select monitor.run_detector(%s)", (detector,))
        return conn.execute(counted, (relation,)).fetchone()[0] - before


@pytest.mark.single_node("counts the rows read in the coordinator's table statistics; on a cluster the rows "
                         "are read on the workers (test_negative_balance_between_full_passes checks the events)")
def test_negative_balance_between_full_passes_reads_only_changed_accounts(ledger, conn):
    conn.execute("drop index ledger.accounts_negative")   # as on a ledger with no index on negative balances
    conn.execute("insert into ledger.accounts (account_id, balance, updated_at)"
                 " select 'a' || g, 10, now() - interval '1 day' from generate_series(1, 5000) g")
    conn.execute("analyze ledger.accounts")
    conn.execute("update ledger.accounts set balance = -1 where account_id = 'a7'")
    assert rows_read(conn, "ledger.accounts", "negative_balance") >= 5000      # the first run: a full pass
    assert ledger.keys("negative_balance") == ["a7"]
    conn.execute("update ledger.accounts set balance = -2 where account_id = 'a8'")  # updated_at moves
    assert rows_read(conn, "ledger.accounts", "negative_balance") < 50
    assert ledger.keys("negative_balance", "open") == ["a7", "a8"]
    conn.execute("update ledger.accounts set balance = 3 where account_id = 'a7'")   # recovered: resolved
    assert rows_read(conn, "ledger.accounts", "negative_balance") < 50
    assert ledger.keys("negative_balance", "open") == ["a8"]
    # a balance changed behind the mapping's back (updated_at kept): the next full pass finds it
    conn.execute("alter table ledger.accounts disable trigger accounts_touch")
    conn.execute("update ledger.accounts set balance = -5, updated_at = updated_at - interval '1 day'"
                 " where account_id = 'a9'")
    conn.execute("alter table ledger.accounts enable trigger accounts_touch")
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a8"]
    conn.execute("update monitor.watermarks set high_water = high_water - interval '1 hour'"
                 " where detector = 'negative_balance.full'")
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a8", "a9"]


def test_negative_balance_between_full_passes(ledger, conn):
    """The events of the runs between full passes, on any deployment: an account that went negative,
    one that recovered, one written with an old updated_at (left to the full pass)."""
    conn.execute("insert into ledger.accounts (account_id, balance, updated_at)"
                 " select 'a' || g, 10, now() - interval '1 day' from generate_series(1, 50) g")
    conn.execute("update ledger.accounts set balance = -1 where account_id = 'a7'")
    ledger.run("negative_balance")                                       # a full pass
    assert ledger.keys("negative_balance") == ["a7"]
    conn.execute("update ledger.accounts set balance = -2 where account_id = 'a8'")
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a7", "a8"]
    conn.execute("update ledger.accounts set balance = 3 where account_id = 'a7'")   # recovered: resolved
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a8"]
    # a negative account written with an old updated_at (the ledger's trigger touches updates only)
    conn.execute("insert into ledger.accounts (account_id, balance, updated_at)"
                 " values ('b1', -5, now() - interval '2 days')")
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a8"]
    conn.execute("update monitor.watermarks set high_water = high_water - interval '1 hour'"
                 " where detector = 'negative_balance.full'")
    ledger.run("negative_balance")
    assert ledger.keys("negative_balance", "open") == ["a8", "b1"]


def naive_failure_counts(conn, run: dict) -> tuple[int, int]:
    return conn.execute("select count(*) filter (where status = 'success'), count(*) filter (where status = 'failed')"
                        " from ledger.transactions where created_at >= %s and created_at <= %s",
                        (run["from"], run["to"])).fetchone()


def test_failure_rate_counts_per_minute_agree_with_a_recount(ledger, conn):
    """Late rows, rows changing status, rows leaving the window: the kept minutes add up exactly."""
    ledger.set_params("failure_rate", threshold=0, min_volume=0)
    conn.execute("insert into ledger.accounts (account_id) values ('R')")

    def add(prefix, n, minutes_ago, status):
        conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, created_at)"
                     " select %s || g, 'R', -1, %s, now() - make_interval(secs => %s * 60 + g)"
                     " from generate_series(1, %s) g", (prefix, status, minutes_ago, n))

    def check():
        ledger.run("failure_rate")
        [ev] = ledger.events("failure_rate", "open")
        e = ev["evidence"]
        assert (e["succeeded"], e["failed"]) == naive_failure_counts(conn, e)
        return e

    add("old", 30, 14, "success")
    add("mid", 20, 8, "failed")
    add("pend", 10, 12, "pending")
    first = check()                                   # the first run: the whole window
    assert (first["succeeded"], first["failed"]) == (30, 20)
    add("new", 5, 0, "failed")                        # new rows
    add("late", 4, 3, "success")                      # committed late, inside the late window
    check()
    conn.execute("update ledger.transactions set status = 'failed' where txn_id like 'pend%'")  # older minute
    e = check()
    assert e["failed"] == 35
    # between full passes a run reads its late window and the minutes of changed rows, not the window
    add("bulk", 3000, 11, "success")
    ledger.set_params("failure_rate", full_pass="0")
    check()
    ledger.set_params("failure_rate", full_pass="1 hour")
    assert rows_read(conn, "ledger.transactions", "failure_rate") < 1000
    check()


def test_failure_rate_counts_a_changed_row_of_the_minute_of_since_once(ledger, conn):
    """A run between full passes recounts the minutes from `since` on and those of rows changed since
    then: a changed row created in since's own minute, before since, makes that minute one to recount
    twice over, and it must be counted once."""
    ledger.set_params("failure_rate", threshold=0, min_volume=0)
    conn.execute("insert into ledger.accounts (account_id) values ('R')")
    minute = conn.execute("select date_trunc('minute', now()) - interval '8 minutes'").fetchone()[0]
    conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, created_at)"
                 " values ('early', 'R', -1, 'success', %s::timestamptz - interval '2 minutes')", (minute,))
    ledger.run("failure_rate")                        # a full pass: the per-minute counts exist
    # the next run's since (high_water less the 5 minute late_window) is 30 seconds into the minute
    conn.execute("update monitor.watermarks set high_water = %s::timestamptz + interval '5 minutes 30 seconds'"
                 " where detector = 'failure_rate'", (minute,))
    conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, created_at) values"
                 " ('before', 'R', -1, 'success', %s::timestamptz + interval '10 seconds'),"
                 " ('after', 'R', -1, 'failed', %s::timestamptz + interval '40 seconds')", (minute, minute))
    ledger.run("failure_rate")
    assert ledger.last_run("failure_rate")["since"] == minute + timedelta(seconds=30)
    [ev] = ledger.events("failure_rate", "open")
    e = ev["evidence"]
    assert (e["succeeded"], e["failed"]) == naive_failure_counts(conn, e) == (2, 1)
