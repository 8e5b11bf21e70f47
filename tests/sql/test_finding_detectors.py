"""failed_debit, consecutive_failures, duplicate_scan, concurrent_txn: positive, negative, boundary."""


def test_failed_debit_positive(ledger):
    ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=40)
    assert ledger.run("failed_debit") == 1
    [ev] = ledger.events("failed_debit")
    assert (ev["subject"], ev["dedup_key"], ev["txn_id"], ev["amount"]) == ("A", "t1", "t1", 10)
    assert ev["severity"] == "critical" and ev["status"] == "open"
    assert ev["evidence"]["balance_before"] == 50 and ev["evidence"]["balance_after"] == 40


def test_failed_debit_negative(ledger):
    ledger.txn("t1", "A", amount=-10, status="failed", before=50, after=50)   # nothing taken
    ledger.txn("t2", "A", amount=-10, status="success", before=50, after=40)  # a normal payment
    ledger.txn("t3", "A", amount=-10, status="failed")                        # no balances recorded
    ledger.txn("t4", "A", amount=10, status="failed", before=40, after=50)    # balance went up
    assert ledger.run("failed_debit") == 0
    assert ledger.events("failed_debit") == []


def test_failed_debit_boundary_smallest_loss(ledger):
    ledger.txn("t1", "A", amount=-0.01, status="failed", before=50, after=49.99)
    assert ledger.run("failed_debit") == 1


def test_failed_debit_pending_updated_to_failed(ledger, conn):
    ledger.txn("t1", "A", amount=-10, status="pending", before=50, after=40, at=-3600 * 3)
    assert ledger.run("failed_debit") == 0
    conn.execute("update ledger.transactions set status = 'failed' where txn_id = 't1'")
    assert ledger.run("failed_debit") == 1
    assert ledger.keys("failed_debit") == ["t1"]


def fail_run(ledger, account, times, prefix="f"):
    for i, t in enumerate(times):
        ledger.txn(f"{prefix}{i}", account, status="failed", at=t)


def test_consecutive_failures_positive(ledger):
    fail_run(ledger, "A", [0, 60, 120])
    assert ledger.run("consecutive_failures") == 1
    [ev] = ledger.events("consecutive_failures")
    assert (ev["subject"], ev["dedup_key"], ev["txn_id"]) == ("A", "f0", "f0")
    assert ev["evidence"]["failures"] == 3


def test_consecutive_failures_broken_by_success(ledger):
    ledger.txn("f0", "A", status="failed", at=0)
    ledger.txn("f1", "A", status="failed", at=10)
    ledger.txn("s", "A", status="success", at=20)
    ledger.txn("f2", "A", status="failed", at=30)
    assert ledger.run("consecutive_failures") == 0


def test_consecutive_failures_pending_skipped(ledger):
    ledger.txn("f0", "A", status="failed", at=0)
    ledger.txn("p", "A", status="pending", at=5)
    ledger.txn("f1", "A", status="failed", at=10)
    ledger.txn("f2", "A", status="failed", at=20)
    assert ledger.run("consecutive_failures") == 1


def test_consecutive_failures_window_boundary_exact(ledger):
    fail_run(ledger, "A", [0, 300, 600])  # first to last exactly 10 minutes: fires
    assert ledger.run("consecutive_failures") == 1


def test_consecutive_failures_window_boundary_over(ledger):
    fail_run(ledger, "A", [0, 300, 601])  # 10 minutes and 1 second: does not
    assert ledger.run("consecutive_failures") == 0


def test_consecutive_failures_run_grows_stays_one_event(ledger):
    ledger.recent(240)
    fail_run(ledger, "A", [0, 60, 120])
    assert ledger.run("consecutive_failures") == 1
    ledger.txn("f9", "A", status="failed", at=180)
    assert ledger.run("consecutive_failures") == 0
    [ev] = ledger.events("consecutive_failures")
    assert ev["dedup_key"] == "f0" and ev["evidence"]["failures"] == 4 and ev["occurrences"] == 2


def test_consecutive_failures_late_row_extends_backwards(ledger):
    ledger.recent(240)
    fail_run(ledger, "A", [60, 120, 180])
    assert ledger.run("consecutive_failures") == 1
    ledger.txn("early", "A", status="failed", at=0)  # committed late, stamped before the run's first row
    assert ledger.run("consecutive_failures") == 0
    [ev] = ledger.events("consecutive_failures")
    assert ev["dedup_key"] == "f0" and ev["evidence"]["first_txn_id"] == "early"


def test_duplicate_scan_positive(ledger):
    ledger.scan("s1", "A", at=0)
    ledger.scan("s2", "A", at=3)
    assert ledger.run("duplicate_scan") == 1
    [ev] = ledger.events("duplicate_scan")
    assert (ev["subject"], ev["dedup_key"], ev["txn_id"], ev["amount"]) == ("A", "s1", None, None)


def test_duplicate_scan_negative(ledger):
    ledger.scan("s1", "A", at=0)
    ledger.scan("s2", "A", at=60)
    ledger.scan("s3", "B", at=1)
    assert ledger.run("duplicate_scan") == 0


def test_duplicate_scan_boundary(ledger):
    ledger.scan("a1", "A", at=0)
    ledger.scan("a2", "A", at=5)        # exactly the window: a burst
    ledger.scan("b1", "B", at=0)
    ledger.scan("b2", "B", at=5.001)    # just over: not
    assert ledger.run("duplicate_scan") == 1
    assert ledger.keys("duplicate_scan") == ["a1"]


def test_duplicate_scan_chain_is_one_burst(ledger):
    for i in range(6):
        ledger.scan(f"s{i}", "A", at=4 * i)  # each within 5 s of the previous: one burst of 6
    assert ledger.run("duplicate_scan") == 1
    [ev] = ledger.events("duplicate_scan")
    assert ev["evidence"]["scans"] == 6


def test_duplicate_scan_tie_breaks_on_id_bytes(ledger):
    ledger.scan("b", "A", at=0)
    ledger.scan("B", "A", at=0)  # 'B' < 'b' in byte order
    assert ledger.run("duplicate_scan") == 1
    assert ledger.keys("duplicate_scan") == ["B"]


def test_duplicate_scan_burst_reaching_back_before_since(ledger):
    # a burst running for 20 minutes, scans every 4 s; the run examines only the last minute
    for i in range(300):
        ledger.scan(f"s{i:03d}", "A", at=4 * i)
    since = ledger.at(4 * 299 - 60)
    assert ledger.run("duplicate_scan", since) == 1
    [ev] = ledger.events("duplicate_scan")
    assert ev["dedup_key"] == "s000" and ev["evidence"]["scans"] == 300


def test_concurrent_txn_positive_any_status(ledger):
    ledger.txn("t1", "A", amount=-5, status="success", at=0)
    ledger.txn("t2", "A", amount=-7, status="failed", at=1)
    assert ledger.run("concurrent_txn") == 1
    [ev] = ledger.events("concurrent_txn")
    assert (ev["dedup_key"], ev["txn_id"], ev["amount"]) == ("t1", "t1", -12)


def test_concurrent_txn_boundary(ledger):
    ledger.txn("a1", "A", at=0)
    ledger.txn("a2", "A", at=2)         # exactly 2 s: fires
    ledger.txn("b1", "B", at=0)
    ledger.txn("b2", "B", at=2.001)     # just over: not
    assert ledger.run("concurrent_txn") == 1
    assert ledger.keys("concurrent_txn") == ["a1"]


def test_min_count_parameter(ledger):
    ledger.recent(60)
    ledger.set_params("duplicate_scan", min_count=3)
    ledger.scan("s1", "A", at=0)
    ledger.scan("s2", "A", at=1)
    assert ledger.run("duplicate_scan") == 0
    ledger.scan("s3", "A", at=2)
    assert ledger.run("duplicate_scan") == 1


def test_concurrent_txn_watches_debits_by_default_and_every_transaction_when_asked(ledger):
    """Two payments a second apart are a burst; a top-up and a payment a second apart are one only
    with debits_only = false (the rule over an account's transactions, any direction)."""
    ledger.txn("p1", "P", amount=-5, at=0)
    ledger.txn("p2", "P", amount=-5, at=1)
    ledger.txn("t1", "T", amount=20, at=0)
    ledger.txn("t2", "T", amount=-5, at=1)
    ledger.run("concurrent_txn")
    assert ledger.keys("concurrent_txn") == ["p1"]
    ledger.set_params("concurrent_txn", debits_only=False)
    ledger.run("concurrent_txn", since=ledger.at(-60))
    assert sorted(ledger.keys("concurrent_txn")) == ["p1", "t1"]


def judge_by_the_balance(db):
    """Install a mapping onto the reference ledger without balances around a transaction: failed_debit
    then reads its account's balance (docs/mapping.md)."""
    from monitorctl import mapping
    from monitorctl.install import install
    from tests.conftest import on_citus

    config = mapping.ledger_mapping()
    cols = config["sources"]["transactions"]["columns"]
    del cols["balance_before"], cols["balance_after"]
    install(db, config=config, with_ledger=True, do_schedule=False, distributed=on_citus())


def test_failed_debit_on_the_balance_is_not_made_ambiguous_by_one_reported_before(ledger, db, conn):
    """A failed debit already reported (refunded, resolved) does not make a later one of the same
    amount look ambiguous, also where every row of the late window reads as new (a distributed
    ledger, a view): the later one alone explains what the balance lacks."""
    judge_by_the_balance(db)
    assert conn.execute("select monitor.failed_debit_evidence()").fetchone()[0] == "difference"
    ledger.recent(120)
    ledger.account("A", balance=90, opening=100)
    ledger.txn("f1", "A", amount=-10, status="failed", at=0)
    assert ledger.run("failed_debit") == 1
    [ev] = ledger.events("failed_debit")
    conn.execute("update ledger.accounts set balance = 100 where account_id = 'A'")  # refunded
    conn.execute("select monitor.resolve(array[%s]::bigint[], 'refunded')", (ev["event_id"],))
    ledger.txn("f2", "A", amount=-10, status="failed", at=30)
    conn.execute("update ledger.accounts set balance = 90 where account_id = 'A'")  # it took 10 too
    assert ledger.run("failed_debit") == 1
    assert ledger.keys("failed_debit") == ["f1", "f2"]
    assert ledger.last_run("failed_debit")["status"] == "ok"


def test_failed_debit_on_the_balance_names_no_candidate_when_two_could_have_taken_it(ledger, db, conn):
    judge_by_the_balance(db)
    ledger.recent(120)
    ledger.account("A", balance=90, opening=100)
    ledger.txn("f1", "A", amount=-10, status="failed", at=0)
    ledger.txn("f2", "A", amount=-10, status="failed", at=1)
    ledger.account("B", balance=95, opening=100)
    ledger.txn("g1", "B", amount=-5, status="failed", at=0)
    ledger.txn("g2", "B", amount=-7, status="failed", at=1)
    assert ledger.run("failed_debit") == 1
    assert ledger.keys("failed_debit") == ["g1"]
    assert ledger.last_run("failed_debit")["status"] == "ok"


def test_consecutive_failures_run_starts_after_the_last_success_of_each_account(ledger):
    """Several accounts at once, each run starting after its own last success (on a distributed
    ledger each account's shard finds it)."""
    ledger.recent(600)
    for a in ("A", "B", "C"):
        ledger.txn(f"{a}-ok", a, status="success", at=0)
        fail_run(ledger, a, [10, 20], prefix=f"{a}-old")
        ledger.txn(f"{a}-ok2", a, status="success", at=30)
        fail_run(ledger, a, [40, 50, 60], prefix=f"{a}-f")
    ledger.txn("D-ok", "D", status="success", at=5)
    fail_run(ledger, "D", [10, 20], prefix="D-f")  # two only: no run of three
    assert ledger.run("consecutive_failures") == 3
    assert sorted(ledger.keys("consecutive_failures")) == ["A-f0", "B-f0", "C-f0"]


def test_bursts_of_several_accounts_reaching_back_at_different_depths(ledger):
    """Bursts that started before since, of several accounts at once and at different depths, each
    reported once from its own first row; a later burst of the same account is reported on its own."""
    for i in range(120):
        ledger.scan(f"a{i:03d}", "A", at=4 * i)           # from 0 to 476 s
    for i in range(20):
        ledger.scan(f"b{i:03d}", "B", at=400 + 4 * i)     # from 400 to 476 s
    ledger.scan("c0", "C", at=470)
    ledger.scan("c1", "C", at=474)                        # starts just before since
    ledger.scan("a-late0", "A", at=490)
    ledger.scan("a-late1", "A", at=491)                   # A again, 14 s after its burst
    assert ledger.run("duplicate_scan", ledger.at(472)) == 4
    got = {e["dedup_key"]: e["evidence"]["scans"] for e in ledger.events("duplicate_scan")}
    assert got == {"a000": 120, "b000": 20, "c0": 2, "a-late0": 2}
    assert [e["occurrences"] for e in ledger.events("duplicate_scan")] == [1, 1, 1, 1]
