"""The finding and condition detectors agree with an independent model of docs/detectors.md.

Random small ledgers (a few accounts, up to 40 random transactions and 40 scans in the last half
hour plus injected failure runs, stuck pendings and failure-rate blocks, on a 0.5 s grid so that
window boundaries and exact ties happen) are written into the reference ledger; every detector then runs once with `since` before all rows, inside one
transaction so that now() is the same for the rows and for the run, and the events it opened
must be exactly those of tests/property/oracle.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from monitorctl.install import install
from tests.property import oracle

# ids that differ only in case (and one non-ASCII letter) so that ties in time are broken by the
# byte order of ids: 'A' < 'B' < 'a' < 'b' < 'z' < 'é' in bytes, but not in a linguistic collation
ID_ALPHABET = "aAbBzZé_"
ACCOUNT_IDS = ["acct", "ACCT", "Acct", "b", "B", "é"]

HALF = timedelta(milliseconds=500)
# boundaries, in half seconds before the run: stuck_pending's age (10 min), failure_rate's window
# (15 min), the run time itself and just after it
EDGES = [1200, 1199, 1201, 1800, 1799, 1801, 0, 1, -1]
# distances between anchors: the concurrent_txn and duplicate_scan windows, the
# consecutive_failures window and just over it
STEPS = [4, 5, 10, 11, 600, 1200, 1201]

SETTINGS = settings(max_examples=60, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

CLEAR = ("truncate ledger.scans, ledger.transactions, ledger.accounts, monitor.events, monitor.alert_history,"
         " monitor.deliveries, monitor.delivery_attempts,"
         " monitor.watermarks, monitor.account_totals, monitor.detector_runs")


def cents(n: int) -> Decimal:
    return Decimal(n).scaleb(-2)


ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=3)


@st.composite
def ledgers(draw):
    """(accounts, transactions, scans) with times as half seconds before the run (negative: after)."""
    accounts = draw(st.lists(st.sampled_from(ACCOUNT_IDS), min_size=1, max_size=4, unique=True))
    anywhere = st.integers(-2, 3600)
    anchors = [draw(st.one_of(st.sampled_from(EDGES), anywhere))]
    for _ in range(draw(st.integers(0, 3))):
        prev = draw(st.sampled_from(anchors))
        step = draw(st.sampled_from(STEPS)) * draw(st.sampled_from([1, -1]))
        anchors.append(draw(st.one_of(st.sampled_from(EDGES), anywhere, st.just(prev + step))))

    def when() -> int:
        if draw(st.integers(0, 3)) == 0:
            return draw(anywhere)
        return max(-2, draw(st.sampled_from(anchors)) + draw(st.integers(-12, 12)))

    def balances(amount: Decimal):
        kind = draw(st.sampled_from(["none", "none", "before", "after", "both", "both", "both"]))
        before = cents(draw(st.integers(-1000, 10000)))
        delta = draw(st.sampled_from([amount, Decimal(0), cents(-1), cents(1), amount, -amount]))
        return (before if kind in ("before", "both") else None,
                before + delta if kind in ("after", "both") else None)

    transactions = []
    for txn_id in draw(st.lists(ids, max_size=40, unique=True)):
        amount = cents(draw(st.one_of(st.integers(-5000, 5000), st.sampled_from([-1, 1, -100, 100]))))
        before, after = balances(amount)
        transactions.append({
            "txn_id": txn_id, "account_id": draw(st.sampled_from(accounts)), "amount": amount,
            "status": draw(st.sampled_from(["success", "success", "failed", "failed", "pending"])),
            "balance_before": before, "balance_after": after, "ago": when()})

    # an injected run of failures on one account whose first three span exactly the
    # consecutive_failures window or just over it, sometimes broken by a success or interleaved
    # with a pending one
    if draw(st.integers(0, 2)) > 0:
        account = draw(st.sampled_from(accounts))
        at = draw(st.one_of(st.sampled_from(anchors), anywhere))
        steps = list(draw(st.sampled_from([(600, 600), (1200, 0), (0, 1200), (599, 601), (600, 601), (0, 1201)])))
        for i in range(draw(st.sampled_from([2, 3, 3, 3, 4, 5]))):
            status = draw(st.sampled_from(["failed"] * 8 + ["pending", "success"]))
            before, after = balances(cents(-100))
            transactions.append({
                "txn_id": draw(st.sampled_from("fF")) + str(i), "account_id": account, "amount": cents(-100),
                "status": status, "balance_before": before, "balance_after": after, "ago": at})
            at -= steps.pop(0) if steps else draw(st.sampled_from([0, 1, 4, 600, 1200, 1201]))

    # pending transactions on stuck_pending's edge: exactly 10 minutes old, or half a second either side
    for i in range(draw(st.integers(0, 2))):
        transactions.append({
            "txn_id": draw(st.sampled_from("pP")) + str(i), "account_id": draw(st.sampled_from(accounts)),
            "amount": cents(-100), "status": "pending", "balance_before": None, "balance_after": None,
            "ago": draw(st.sampled_from([1200, 1200, 1199, 1201]))})

    # failure_rate on its edges: top the trailing window up to about min_volume transactions with
    # a failure share at or just over the threshold, many of them on the window's ends, plus a
    # few just outside it
    if draw(st.integers(0, 2)) > 0:
        counted = [t["status"] for t in transactions if 0 <= t["ago"] <= 1800 and t["status"] != "pending"]
        has_failed, has_ok = counted.count("failed"), counted.count("success")
        k = max(1, has_failed, -(-len(counted) // 19))
        total = 20 * k + draw(st.sampled_from([-1, 0, 0, 1]))  # about k * min_volume ...
        failed = k + draw(st.integers(0, 1))                    # ... with 5% failed, or one more
        add_failed = max(0, failed - has_failed)
        add_ok = max(0, total - failed - has_ok)
        statuses = ["failed"] * add_failed + ["success"] * add_ok
        statuses += draw(st.lists(st.sampled_from(["failed", "success", "pending"]), max_size=3))
        for i, status in enumerate(statuses):
            inside = i < add_failed + add_ok
            ago = (draw(st.one_of(st.sampled_from([0, 1800]), st.integers(0, 1800))) if inside
                   else draw(st.sampled_from([-1, 1801])))
            transactions.append({
                "txn_id": f"r{i:02d}", "account_id": draw(st.sampled_from(accounts)), "amount": cents(-100),
                "status": status, "balance_before": None, "balance_after": None, "ago": ago})

    scans = [{"scan_id": scan_id, "account_id": draw(st.sampled_from(accounts)), "ago": when()}
             for scan_id in draw(st.lists(ids, max_size=40, unique=True))]

    rows = []
    for account_id in accounts:
        opening = cents(draw(st.integers(-2000, 20000)))
        settled = sum((t["amount"] for t in transactions
                       if t["account_id"] == account_id and t["status"] == "success"), Decimal(0))
        off = draw(st.sampled_from([cents(0)] * 4 + [cents(1), cents(-1), cents(2), cents(-2),
                                                     Decimal("0.011"), Decimal("-0.0101"), cents(-700)]))
        balance = opening + settled + off
        if draw(st.integers(0, 9)) == 0:  # a balance set by hand: zero, or just below it
            balance = draw(st.sampled_from([Decimal(0), cents(-1)]))
        rows.append({"account_id": account_id, "opening_balance": opening, "balance": balance})
    return rows, transactions, scans


def load_and_run(conn, ledger):
    """Write the ledger, run every detector once; (now, rows with times, events, runs)."""
    accounts, transactions, scans = ledger
    conn.execute(CLEAR)
    now = conn.execute("select now()").fetchone()[0]
    transactions = [dict(t, created_at=now - t["ago"] * HALF) for t in transactions]
    scans = [dict(s, scanned_at=now - s["ago"] * HALF) for s in scans]
    with conn.cursor() as cur:
        cur.executemany("insert into ledger.accounts (account_id, balance, opening_balance) values (%s, %s, %s)",
                        [(a["account_id"], a["balance"], a["opening_balance"]) for a in accounts])
        cur.executemany(
            "insert into ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,"
            " created_at) values (%s, %s, %s, %s, %s, %s, %s)",
            [(t["txn_id"], t["account_id"], t["amount"], t["status"], t["balance_before"], t["balance_after"],
              t["created_at"]) for t in transactions])
        cur.executemany("insert into ledger.scans (scan_id, account_id, scanned_at) values (%s, %s, %s)",
                        [(s["scan_id"], s["account_id"], s["scanned_at"]) for s in scans])
    for name in oracle.DETECTORS:
        conn.execute("select monitor.run_detector(%s, '-infinity')", (name,))
    events = conn.execute("select detector, dedup_key, subject, txn_id, amount, status from monitor.events"
                          ).fetchall()
    runs = conn.execute("select detector, status, error from monitor.detector_runs").fetchall()
    return now, accounts, transactions, scans, events, runs


def check_agreement(conn, ledger):
    with conn.transaction(force_rollback=True):
        now, accounts, transactions, scans, events, runs = load_and_run(conn, ledger)
    note(f"now={now}")
    assert sorted(r[0] for r in runs if r[1] == "ok") == sorted(oracle.DETECTORS), runs
    want = oracle.expected_events(accounts, transactions, scans, now)
    got = {(d, k): {"subject": s, "txn_id": t, "amount": a} for d, k, s, t, a, _ in events}
    assert len(got) == len(events), "two events with one (detector, dedup_key)"
    assert all(e[5] == "open" for e in events), events
    assert set(got) == set(want), (
        f"only in the database: {sorted(set(got) - set(want))}; only in the model: {sorted(set(want) - set(got))}")
    assert got == want
    for detector in sorted({d for d, _ in want}):
        event(f"fires: {detector}")
    # how often the first row of a burst shares its time with another row (a tie broken by id)
    for detector, key in want:
        if detector in ("duplicate_scan", "concurrent_txn"):
            rows, id_key, t_key = ((scans, "scan_id", "scanned_at") if detector == "duplicate_scan"
                                   else (transactions, "txn_id", "created_at"))
            first = next(r for r in rows if r[id_key] == key)
            if any(r[t_key] == first[t_key] and r[id_key] != key and r["account_id"] == first["account_id"]
                   for r in rows):
                event(f"tie at the first row: {detector}")


@SETTINGS
@given(ledger=ledgers())
def test_detectors_agree_with_model(conn, ledger):
    check_agreement(conn, ledger)


@pytest.fixture
def linguistic_conn(db, conn):
    """The ledger's ids under a linguistic (ICU) collation, in which 'a' sorts before 'A': the
    detectors must still break ties in byte order. The source views are rebuilt by a re-install."""
    if conn.execute("select count(*) from pg_collation where collname = 'en-x-icu'").fetchone()[0] == 0:
        pytest.skip("this server has no ICU collation en-x-icu")
    with conn.transaction():
        conn.execute("drop view monitor.src_transactions, monitor.src_scans cascade")
        conn.execute('alter table ledger.transactions alter column txn_id type text collate "en-x-icu"')
        conn.execute('alter table ledger.scans alter column scan_id type text collate "en-x-icu"')
    install(db, do_schedule=False)
    # the premise: the source views carry the collation, and it does not sort in byte order
    assert conn.execute("select 'a' < 'A' collate \"en-x-icu\"").fetchone()[0]
    conn.execute("insert into ledger.accounts (account_id) values ('x')")
    conn.execute("insert into ledger.scans (scan_id, account_id) values ('A', 'x'), ('a', 'x')")
    assert conn.execute("select array_agg(scan_id order by scan_id) from monitor.src_scans").fetchone()[0] \
        == ["a", "A"]
    conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
    return conn


@SETTINGS
@given(ledger=ledgers())
def test_detectors_agree_with_model_under_linguistic_collation(linguistic_conn, ledger):
    check_agreement(linguistic_conn, ledger)
