"""The notification outbox in SQL (sql/075_notifications.sql): routing, silences, claims under a
lease, attempts, retries, the circuit breaker, digests, repeats and escalations."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.ledger import Ledger


def receivers(conn, *names):
    for name in names:
        conn.execute("insert into monitor.receivers (name, type, config) values (%s, 'webhook', %s)",
                     (name, '{"url": "http://127.0.0.1:9/"}'))


def route(conn, receiver, position=1, **cols):
    keys = ["receiver", "position", *cols]
    conn.execute(sql.SQL("insert into monitor.routes ({}) values ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, keys)), sql.SQL(", ").join(sql.Placeholder() * len(keys))),
        (receiver, position, *cols.values()))


def deliveries(conn, **where):
    cond = sql.SQL(" and ").join([sql.SQL("true")] + [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in where])
    return conn.execute(sql.SQL("select receiver, transition, status from monitor.deliveries where {}"
                                " order by delivery_id").format(cond), tuple(where.values())).fetchall()


def claim(conn, worker="w1", limit=100, lease="30 seconds"):
    return conn.execute("select delivery_id, receiver, transition, event from monitor.claim_deliveries(%s, %s, %s)",
                        (worker, limit, lease)).fetchall()


def attempt(conn, delivery_id, ok, code=None, reply=None, retry=True, retry_after=None, worker="w1"):
    """The outcome of the attempt `worker` claimed: the delivery's current one."""
    return conn.execute("select monitor.record_attempt(%s, %s, (select attempts from monitor.deliveries"
                        " where delivery_id = %s), %s, now(), 10, %s, %s, %s, %s)",
                        (delivery_id, worker, delivery_id, ok, code, reply, retry, retry_after)).fetchone()[0]


@pytest.fixture
def ledger(conn):
    conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
    return Ledger(conn)


def test_no_route_no_delivery(ledger, conn):
    receivers(conn, "hook")
    ledger.account("A", balance=-1)
    assert ledger.run("negative_balance") == 1
    assert deliveries(conn) == []


def test_routes_first_match_wins_unless_continue(ledger, conn):
    receivers(conn, "pager", "chat", "all")
    route(conn, "pager", 1, min_severity="critical", continue_after=True)
    route(conn, "chat", 2, detectors=["negative_balance"], subject_glob="card-*")
    route(conn, "all", 3)
    ledger.account("card-1", balance=-1)          # high: not pager; chat matches and stops there
    ledger.account("other", balance=-1)           # not card-*: falls through to all
    ledger.run("negative_balance")
    assert sorted(deliveries(conn)) == [("all", "opened", "pending"), ("chat", "opened", "pending")]
    conn.execute("truncate monitor.deliveries cascade")
    ledger.txn("t1", "card-1", amount=-5, status="failed", before=10, after=5)   # failed_debit: critical
    ledger.run("failed_debit")
    assert sorted(deliveries(conn)) == [("all", "opened", "pending"), ("pager", "opened", "pending")]


def test_resolutions_only_where_the_route_sends_them(ledger, conn):
    receivers(conn, "quiet", "loud")
    route(conn, "quiet", 1, send_resolved=False, continue_after=True)
    route(conn, "loud", 2)
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    conn.execute("update ledger.accounts set balance = 1")
    ledger.run("negative_balance")
    assert deliveries(conn, transition="auto_resolved") == [("loud", "auto_resolved", "pending")]


def test_a_silence_suppresses_and_the_history_says_so(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    conn.execute("insert into monitor.silences (detector, subject_glob, ends_at, comment)"
                 " values ('negative_balance', 'A*', now() + interval '1 hour', 'card maintenance')")
    ledger.account("A1", balance=-1)
    ledger.account("B1", balance=-1)
    ledger.run("negative_balance")
    assert sorted(deliveries(conn)) == [("hook", "opened", "pending"), ("hook", "opened", "suppressed")]
    [(note,)] = conn.execute("select note from monitor.alert_history where transition = 'suppressed'").fetchall()
    assert "silence" in note and "card maintenance" in note
    assert claim(conn)[0][1] == "hook" and len(claim(conn)) == 0   # the suppressed one is never claimed


def test_a_silence_that_starts_later_does_not_hold_now(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    conn.execute("insert into monitor.silences (starts_at, ends_at, comment)"
                 " values (now() + interval '1 hour', now() + interval '2 hours', 'window')")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert deliveries(conn) == [("hook", "opened", "pending")]


def test_acknowledging_enqueues_in_the_same_transaction(ledger, conn, db):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    event_id = conn.execute("select event_id from monitor.events").fetchone()[0]
    with psycopg.connect(db) as other:             # rolled back: no event change, no delivery
        other.execute("select monitor.acknowledge(array[%s]::bigint[], 'bob')", (event_id,))
        other.rollback()
    assert deliveries(conn, transition="acknowledged") == []
    conn.execute("select monitor.acknowledge(array[%s]::bigint[], 'bob')", (event_id,))
    assert deliveries(conn, transition="acknowledged") == [("hook", "acknowledged", "pending")]


def test_two_workers_never_claim_the_same_delivery_and_a_dead_workers_lease_expires(ledger, conn, db):
    receivers(conn, "hook")
    route(conn, "hook")
    conn.execute("update monitor.settings set value = '1000' where key = 'notify.digest_threshold'")
    for i in range(30):
        ledger.account(f"A{i}", balance=-1)
    ledger.run("negative_balance")
    with psycopg.connect(db) as c1, psycopg.connect(db) as c2:
        # both claim inside open transactions at the same time: SKIP LOCKED splits the work
        first = c1.execute("select delivery_id from monitor.claim_deliveries('w1', 20, '30 seconds')").fetchall()
        second = c2.execute("select delivery_id from monitor.claim_deliveries('w2', 20, '30 seconds')").fetchall()
        c1.commit()
        c2.commit()
    ids1, ids2 = {r[0] for r in first}, {r[0] for r in second}
    assert len(ids1) == 20 and len(ids2) == 10 and not ids1 & ids2
    assert claim(conn) == []                       # all leased
    conn.execute("update monitor.deliveries set lease_until = now() - interval '1 second'"
                 " where delivery_id = any(%s)", (sorted(ids2),))   # w2 died: its lease ran out
    again = {r[0] for r in claim(conn, "w3")}
    assert again == ids2
    assert conn.execute("select max(attempts) from monitor.deliveries").fetchone()[0] == 2


def test_attempts_sent_retried_with_backoff_and_dead(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.account("A", balance=-1)
    ledger.account("B", balance=-2)
    ledger.account("C", balance=-3)
    ledger.run("negative_balance")
    (a, *_), (b, *_), (c, *_) = claim(conn)
    assert attempt(conn, a, True, 200, "ok") == "sent"
    assert attempt(conn, b, False, 503, "unavailable", retry_after="2 minutes") == "failed"
    assert attempt(conn, c, False, 400, "bad request", retry=False) == "dead"
    rows = dict((r[0], r[1:]) for r in conn.execute(
        "select delivery_id, status, due_at - now() > interval '119 seconds', last_error from monitor.deliveries"))
    assert rows[a][0] == "sent" and rows[b][:2] == ("failed", True) and rows[c] == ("dead", False, "bad request")
    history = conn.execute("select transition, note from monitor.alert_history"
                           " where transition in ('notified', 'notification_failed') order by history_id").fetchall()
    assert [h[0] for h in history] == ["notified", "notification_failed"]
    assert "bad request" in history[1][1]
    assert conn.execute("select count(*), count(*) filter (where ok) from monitor.delivery_attempts").fetchone() == (3, 1)
    assert claim(conn) == []                       # b is due in two minutes
    assert conn.execute("select monitor.retry_delivery(%s)", (c,)).fetchone()[0] == "pending"
    assert [r[0] for r in claim(conn)] == [c]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is sent, not dead or failed"):
        conn.execute("select monitor.retry_delivery(%s)", (a,))


def test_backoff_grows_with_attempts_and_gives_up_after_max_attempts(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    conn.execute("update monitor.settings set value = '3' where key = 'notify.max_attempts'")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    statuses = []
    for _ in range(3):
        conn.execute("update monitor.deliveries set due_at = now()")
        [(d, *_)] = claim(conn)
        statuses.append(attempt(conn, d, False, 500, "boom"))
        # full jitter: the wait is at most 2 s * 2^attempts
        attempts, wait = conn.execute("select attempts, extract(epoch from due_at - clock_timestamp())"
                                      " from monitor.deliveries").fetchone()
        assert wait <= 2 * 2 ** attempts
    assert statuses == ["failed", "failed", "dead"]


def test_the_circuit_opens_after_five_failures_and_half_opens_with_one_probe(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    for i in range(8):
        ledger.account(f"A{i}", balance=-1)
    ledger.run("negative_balance")
    for d, *_ in claim(conn, limit=5):
        attempt(conn, d, False, None, "connection refused")
    assert conn.execute("select failures, open_until > now() from monitor.receivers").fetchone() == (5, True)
    conn.execute("update monitor.deliveries set due_at = now()")
    assert claim(conn) == []                       # open: nothing goes to it
    conn.execute("update monitor.receivers set open_until = now() - interval '1 second'")
    probe = claim(conn)
    assert len(probe) == 1                         # half-open: one probe
    assert claim(conn, "w2") == []                 # and nothing else until its outcome
    attempt(conn, probe[0][0], True, 200, "ok")
    assert conn.execute("select failures, open_until from monitor.receivers").fetchone() == (0, None)
    assert len(claim(conn)) == 7                   # closed again


def test_a_storm_becomes_one_digest_per_receiver(ledger, conn):
    receivers(conn, "hook", "chat")
    route(conn, "hook", 1, continue_after=True)
    route(conn, "chat", 2)
    conn.execute("insert into ledger.accounts (account_id, balance) select 'S' || g, -g from generate_series(1, 137) g")
    ledger.run("negative_balance")
    claimed = claim(conn)
    assert sorted((r[1], r[2]) for r in claimed) == [("chat", "digest"), ("hook", "digest")]
    digest = conn.execute("select digest from monitor.deliveries where transition = 'digest' limit 1").fetchone()[0]
    assert digest["events"] == 137 and float(digest["amount"]) == sum(range(1, 138))
    assert [x["subject"] for x in digest["largest"]] == [f"S{g}" for g in range(137, 127, -1)]
    assert conn.execute("select count(*) from monitor.deliveries where status = 'digested'").fetchone()[0] == 274
    attempt(conn, claimed[0][0], True, 200, "ok")
    assert conn.execute("select count(*) from monitor.alert_history where transition = 'notified'"
                        ).fetchone()[0] == 137   # every event of the digest says who was told


def test_a_few_events_are_sent_one_by_one(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    for i in range(5):
        ledger.account(f"A{i}", balance=-1)
    ledger.run("negative_balance")
    assert [r[2] for r in claim(conn)] == ["opened"] * 5


def test_repeats_and_escalations_come_due(ledger, conn):
    receivers(conn, "chat", "boss")
    route(conn, "chat", 1, repeat_every="1 hour", escalate_after="15 minutes", escalate_to="boss")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 0     # just told, just opened
    conn.execute("update monitor.deliveries set created_at = created_at - interval '61 minutes'")
    conn.execute("update monitor.events set first_seen = first_seen - interval '16 minutes'")
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 2
    assert sorted(deliveries(conn, status="pending")) == [("boss", "escalated", "pending"),
                                                          ("chat", "opened", "pending"), ("chat", "repeat", "pending")]
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 0     # once each
    event_id = conn.execute("select event_id from monitor.events").fetchone()[0]
    conn.execute("select monitor.acknowledge(array[%s]::bigint[])", (event_id,))
    conn.execute("update monitor.deliveries set created_at = created_at - interval '2 hours'")
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 0     # acknowledged: no more


def test_critical_events_repeat_every_four_hours_by_default(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.txn("t1", "A", amount=-5, status="failed", before=10, after=5)
    ledger.run("failed_debit")
    ledger.account("N", balance=-1)
    ledger.run("negative_balance")                  # high: no repeat by default
    conn.execute("update monitor.deliveries set created_at = created_at - interval '4 hours 1 minute'")
    conn.execute("select monitor.enqueue_due()")
    assert deliveries(conn, transition="repeat") == [("hook", "repeat", "pending")]


def test_a_silenced_event_is_sent_when_the_silence_ends_if_due(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook", repeat_every="30 minutes")
    conn.execute("insert into monitor.silences (ends_at, comment) values (now() + interval '1 hour', 'deploy')")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 0     # still silenced
    conn.execute("update monitor.silences set ends_at = now() - interval '1 second',"
                 " starts_at = now() - interval '2 hours'")
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 1
    assert deliveries(conn, status="pending") == [("hook", "repeat", "pending")]


def test_the_reader_sees_deliveries_but_never_a_secret(conn, db):
    conn.execute("insert into monitor.receivers (name, type, config, secret) values"
                 " ('hook', 'webhook', '{\"url\": \"http://x\"}', 'whsec_c2VjcmV0')")
    conn.execute("create role outbox_reader login; grant monitor_reader to outbox_reader")
    try:
        with psycopg.connect(db, user="outbox_reader") as r:
            assert r.execute("select name, type from monitor.receivers").fetchall() == [("hook", "webhook")]
            r.execute("select count(*) from monitor.deliveries, monitor.delivery_attempts")
            r.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute("select secret from monitor.receivers")
            r.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute("select * from monitor.claim_deliveries('x', 1, '1 minute')")
    finally:
        conn.execute("drop owned by outbox_reader; drop role outbox_reader")


def test_deliveries_follow_the_history_retention(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.account("A", balance=-1)
    ledger.account("B", balance=-2)
    ledger.run("negative_balance")
    (a, *_), (b, *_) = claim(conn)
    attempt(conn, a, True, 200, "ok")
    conn.execute("update monitor.deliveries set created_at = now() - interval '91 days'")
    # a sent delivery 91 days old goes with its attempts; one still waiting to be sent stays
    row = conn.execute("call monitor.prune()").fetchone()
    assert row[-1] == 1
    assert conn.execute("select delivery_id from monitor.deliveries").fetchall() == [(b,)]
    assert conn.execute("select count(*) from monitor.delivery_attempts").fetchone()[0] == 0


def test_a_receivers_rate_limit_holds_across_claims_and_workers(ledger, conn):
    conn.execute("insert into monitor.receivers (name, type, config) values"
                 " ('slow', 'webhook', '{\"url\": \"http://x\", \"rate_per_minute\": 3}'), ('fast', 'webhook', '{\"url\": \"http://y\"}')")
    route(conn, "slow", 1, continue_after=True)
    route(conn, "fast", 2)
    conn.execute("update monitor.settings set value = '1000' where key = 'notify.digest_threshold'")
    for i in range(5):
        ledger.account(f"A{i}", balance=-1)
    ledger.run("negative_balance")
    first = claim(conn, "w1")
    assert sorted(r[1] for r in first).count("slow") == 3 and sorted(r[1] for r in first).count("fast") == 5
    assert [r for r in claim(conn, "w2") if r[1] == "slow"] == []      # 3 in flight: the minute's allowance
    for d, receiver, *_ in first:
        attempt(conn, d, True, 200, "ok")
    assert [r for r in claim(conn, "w2") if r[1] == "slow"] == []      # 3 sent within the minute
    conn.execute("update monitor.delivery_attempts set started_at = started_at - interval '61 seconds'")
    assert len(claim(conn, "w2")) == 2                                 # a new minute: the last two
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="rate per minute"):
        conn.execute("""select monitor.add_receiver('r', 'webhook', '{"url": "http://x", "rate_per_minute": 0}')""")


# -- what a hostile review found ----------------------------------------------------------------------

def test_a_late_answer_from_a_worker_whose_lease_ran_out_changes_nothing(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    [(d, *_)] = claim(conn, "w1", lease="1 second")
    conn.execute("update monitor.deliveries set lease_until = now() - interval '1 second'")
    assert [r[0] for r in claim(conn, "w2")] == [d]                       # w2 has it now (attempt 2)
    late = "select monitor.record_attempt(%s, %s, %s, %s, now(), 10, %s, 'x', %s)"
    assert conn.execute(late, (d, "w1", 1, False, 500, True)).fetchone()[0] == "pending"   # ignored
    assert conn.execute("select status, leased_by, lease_until > now() from monitor.deliveries"
                        ).fetchone() == ("pending", "w2", True)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is being sent"):
        conn.execute("select monitor.retry_delivery(%s)", (d,))               # not while it is leased
    assert conn.execute(late, (d, "w2", 2, True, 200, True)).fetchone()[0] == "sent"
    assert conn.execute(late, (d, "w1", 1, False, 400, False)).fetchone()[0] == "sent"  # still sent
    assert conn.execute("select count(*) from monitor.delivery_attempts").fetchone()[0] == 3


def test_a_late_success_rescues_a_delivery_another_worker_gave_up(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    [(d, *_)] = claim(conn, "w1")
    conn.execute("update monitor.deliveries set lease_until = now() - interval '1 second'")
    claim(conn, "w2")
    record = "select monitor.record_attempt(%s, %s, %s, %s, now(), 10, %s, 'x', %s)"
    assert conn.execute(record, (d, "w2", 2, False, 400, False)).fetchone()[0] == "dead"
    assert conn.execute(record, (d, "w1", 1, True, 200, True)).fetchone()[0] == "sent"  # the receiver has it


def test_two_workers_looking_for_due_repeats_enqueue_each_once(ledger, conn, db):
    receivers(conn, "hook", "lead")
    route(conn, "hook", 1, repeat_every="1 hour", escalate_after="1 minute", escalate_to="lead")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    conn.execute("update monitor.deliveries set created_at = created_at - interval '2 hours'")
    conn.execute("update monitor.events set first_seen = first_seen - interval '2 hours'")
    with psycopg.connect(db) as c1, psycopg.connect(db) as c2:
        first = c1.execute("select monitor.enqueue_due()").fetchone()[0]
        second = c2.execute("select monitor.enqueue_due()").fetchone()[0]        # the first holds the look
        c1.commit()
        c2.commit()
    assert (first, second) == (2, 0)
    assert conn.execute("select monitor.enqueue_due()").fetchone()[0] == 0
    assert sorted(deliveries(conn, status="pending")) == [("hook", "opened", "pending"), ("hook", "repeat", "pending"),
                                                          ("lead", "escalated", "pending")]


def test_a_receiver_told_of_an_opening_hears_of_what_follows_whatever_the_routes_say_now(ledger, conn):
    receivers(conn, "pager")
    route(conn, "pager", 1, min_severity="high")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")                                   # high: to the pager
    conn.execute("update monitor.detectors set severity = 'low' where name = 'negative_balance'")
    ledger.run("negative_balance")                                   # now low, below the route
    conn.execute("update ledger.accounts set balance = 5")
    ledger.run("negative_balance")                                   # resolved by itself
    assert deliveries(conn) == [("pager", "opened", "pending"), ("pager", "severity_changed", "pending"),
                                ("pager", "auto_resolved", "pending")]
    ledger.account("B", balance=-1)
    ledger.run("negative_balance")                                   # a new low event: not the pager's
    assert len(deliveries(conn)) == 3


def test_a_resolution_during_a_silence_reaches_those_told_of_the_opening(ledger, conn):
    receivers(conn, "pager")
    route(conn, "pager")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    conn.execute("insert into monitor.silences (ends_at, comment) values (now() + interval '1 hour', 'deploy')")
    event_id = conn.execute("select event_id from monitor.events").fetchone()[0]
    conn.execute("select monitor.resolve(array[%s]::bigint[], 'fixed')", (event_id,))
    assert deliveries(conn) == [("pager", "opened", "pending"), ("pager", "resolved", "pending")]


def test_pagerduty_keeps_one_incident_per_event_in_a_storm(ledger, conn):
    conn.execute("""insert into monitor.receivers (name, type, config, secret_env)
                    values ('pager', 'pagerduty', '{}', 'PD_KEY')""")
    route(conn, "pager")
    conn.execute("insert into ledger.accounts (account_id, balance) select 'S' || g, -g from generate_series(1, 50) g")
    ledger.run("negative_balance")
    assert {r[2] for r in claim(conn, limit=100)} == {"opened"}     # 50 incidents, no digest
    assert conn.execute("select count(*) from monitor.deliveries where status = 'digested'").fetchone()[0] == 0


def test_deliveries_outlive_their_event_and_their_receiver(ledger, conn):
    receivers(conn, "hook", "other")
    route(conn, "hook", 1, continue_after=True)
    route(conn, "other", 2)
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    (a, *_), (b, *_) = claim(conn)
    attempt(conn, a, True, 200, "ok")
    conn.execute("update ledger.accounts set balance = 1")
    ledger.run("negative_balance")
    conn.execute("update monitor.events set resolved_at = now() - interval '31 days'")
    conn.execute("call monitor.prune()")                                   # the event goes after 30 days
    assert conn.execute("select count(*) from monitor.events").fetchone()[0] == 0
    assert conn.execute("select count(*), count(event_id) from monitor.deliveries").fetchone() == (4, 0)
    conn.execute("delete from monitor.routes where receiver = 'other'")
    conn.execute("select monitor.remove_receiver('other')")               # its record stays; nothing more is sent
    assert conn.execute("select status, last_error from monitor.deliveries where receiver = 'other'"
                        " order by delivery_id").fetchall() == [("dead", "receiver removed")] * 2
    assert conn.execute("select count(*) from monitor.delivery_attempts").fetchone()[0] == 1


def test_a_receiver_hears_of_an_events_transitions_in_order(ledger, conn):
    receivers(conn, "pager")
    route(conn, "pager")
    ledger.account("A", balance=-1)
    ledger.run("negative_balance")
    event_id = conn.execute("select event_id from monitor.events").fetchone()[0]
    conn.execute("select monitor.acknowledge(array[%s]::bigint[])", (event_id,))
    conn.execute("select monitor.resolve(array[%s]::bigint[])", (event_id,))
    sent = []
    for _ in range(4):                       # one at a time, each after the one before it is done
        claimed = claim(conn)
        assert len(claimed) <= 1
        for d, _receiver, transition, _event in claimed:
            sent.append(transition)
            attempt(conn, d, transition != "acknowledged", 500, "boom", retry=False)  # the ack is given up
    assert sent == ["opened", "acknowledged", "resolved"]


def test_a_resolution_waits_for_the_digest_that_carries_its_opening(ledger, conn):
    receivers(conn, "hook")
    route(conn, "hook")
    conn.execute("insert into ledger.accounts (account_id, balance) select 'S' || g, -g from generate_series(1, 137) g")
    ledger.run("negative_balance")
    [(digest_id, _, transition, _)] = claim(conn)
    assert transition == "digest"
    conn.execute("update ledger.accounts set balance = 0 where account_id = 'S1'")
    ledger.run("negative_balance")        # S1 resolves while the digest of its opening is in flight
    assert claim(conn, "w2", lease="1 second") == []
    attempt(conn, digest_id, True, 200, "ok")
    assert [r[2] for r in claim(conn, "w2")] == ["auto_resolved"]
