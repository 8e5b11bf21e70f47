"""balance_chain: the running balance of each account, link by link (docs/detectors.md)."""


def test_a_sum_that_does_not_add_up_and_a_link_that_does_not_follow(ledger):
    ledger.recent(120)
    ledger.txn("a1", "A", amount=10, before=0, after=10, at=0)
    ledger.txn("a2", "A", amount=10, before=10, after=25, at=1)   # 10 + 10 is not 25
    ledger.txn("a3", "A", amount=-5, before=25, after=20, at=2)   # follows a2 as written: no second finding
    ledger.txn("b1", "B", amount=10, before=0, after=10, at=0)
    ledger.txn("b2", "B", amount=-3, before=12, after=9, at=1)    # starts from 12, b1 ended at 10
    assert ledger.run("balance_chain") == 2
    by_key = {e["dedup_key"]: e for e in ledger.events("balance_chain")}
    assert set(by_key) == {"a2", "b2"}
    assert by_key["a2"]["evidence"]["broken"] == "sum" and by_key["a2"]["amount"] == 5
    b2 = by_key["b2"]["evidence"]
    assert b2["broken"] == "link" and b2["previous"]["txn_id"] == "b1" and by_key["b2"]["amount"] == 2


def test_failed_rows_are_links_not_sums_and_rows_without_balances_are_not_in_the_chain(ledger):
    ledger.txn("c1", "C", amount=10, before=0, after=10, at=0)
    ledger.txn("c2", "C", amount=-4, status="failed", before=10, after=6, at=1)  # failed_debit's, not ours
    ledger.txn("c3", "C", amount=-1, status="pending", at=2)                     # no balances
    ledger.txn("c4", "C", amount=-2, before=6, after=4, at=3)                    # follows the failed row
    assert ledger.run("balance_chain") == 0
    assert ledger.run("failed_debit") == 1


def test_a_later_break_is_reported_by_a_later_run_and_an_old_one_never_masks_it(ledger, conn):
    ledger.recent(120)
    ledger.txn("d0", "D", amount=0, status="pending", before=0, after=0, at=0)
    ledger.txn("d1", "D", amount=10, before=0, after=10, at=1)
    ledger.txn("d2", "D", amount=10, before=10, after=25, at=2)  # the first break
    assert ledger.run("balance_chain") == 1
    # an old row changes (pending -> success) and a new row breaks the chain again: the run reads from
    # the old row on, past the break it already reported, to the new one
    conn.execute("update ledger.transactions set status = 'success' where txn_id = 'd0'")
    ledger.txn("d3", "D", amount=5, before=20, after=25, at=30)  # d2 ended at 25
    assert ledger.run("balance_chain") == 1
    assert sorted(ledger.keys("balance_chain")) == ["d2", "d3"]


def test_rows_of_one_time_follow_their_sequence(conn, ledger):
    """Several rows of an account written by one transaction share created_at: txn_id orders them,
    as text ('e10' before 'e9'), unless the mapping gives a sequence."""
    ledger.txn("e9", "E", amount=10, before=0, after=10, at=0)
    ledger.txn("e10", "E", amount=10, before=10, after=20, at=0)
    assert ledger.run("balance_chain") == 1  # in text order e10 comes first and e9 does not follow it


def test_every_break_of_an_account_is_reported_once_however_often_its_rows_are_read(ledger, conn):
    """Two breaks in one account are two findings, in one run; reading the rows again (a row changed
    late, a rescan, or a cluster where every row of the late window looks new) reports nothing more."""
    ledger.recent(120)
    ledger.txn("f0", "F", amount=0, status="pending", before=0, after=0, at=0)
    ledger.txn("f1", "F", amount=10, before=0, after=11, at=1)   # the first break
    ledger.txn("f2", "F", amount=5, before=11, after=16, at=2)   # follows f1 as written
    ledger.txn("f3", "F", amount=5, before=20, after=25, at=3)   # the second: f2 ended at 16
    assert ledger.run("balance_chain") == 2
    assert sorted(ledger.keys("balance_chain")) == ["f1", "f3"]
    conn.execute("update ledger.transactions set status = 'success' where txn_id = 'f0'")
    assert ledger.run("balance_chain") == 0  # read again from f0 on: both recorded
    assert ledger.run("balance_chain", since=ledger.at(-60)) == 0  # a rescan: nothing new either
    assert sorted(ledger.keys("balance_chain")) == ["f1", "f3"]
