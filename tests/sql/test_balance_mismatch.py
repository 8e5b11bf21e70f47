"""balance_mismatch beyond the basics (test_condition_detectors.py): what each run reads by key, and
the same events whether or not the late-window skip can tell a row seen before (on a distributed
ledger, where row_xmin is unknown, it cannot)."""


def test_a_difference_a_failed_transaction_explains_names_it(ledger):
    ledger.account("A", balance=60, opening=100)
    ledger.txn("a1", "A", amount=-30, status="success", at=0)
    ledger.txn("a2", "A", amount=-10, status="failed", at=1)   # rejected, but its money moved
    ledger.txn("a3", "A", amount=-5, status="failed", at=2)    # rejected, moved nothing
    ledger.txn("a4", "A", amount=-10, status="failed", at=3)   # the same amount: a candidate too
    ledger.account("B", balance=50, opening=100)
    ledger.txn("b1", "B", amount=-20, status="failed", at=0)   # not the 50 missing
    assert ledger.run("balance_mismatch") == 2
    by_key = {e["dedup_key"]: e for e in ledger.events("balance_mismatch")}
    assert by_key["A"]["evidence"]["explained_by"] == ["a2", "a4"]
    assert by_key["A"]["summary"].endswith(": failed transaction a2, a4 moved it")
    assert by_key["B"]["evidence"]["explained_by"] is None and by_key["B"]["amount"] == -50


def test_an_open_mismatch_is_rechecked_by_key_and_resolves_while_other_accounts_move(ledger, conn):
    ledger.account("A", balance=90, opening=100)
    ledger.account("B", balance=100, opening=100)
    assert ledger.run("balance_mismatch") == 1                # full pass: A
    ledger.recent(60)
    # A is put right by a new transaction (no update of its row), B moves in step, C is new and wrong
    ledger.txn("a1", "A", amount=-10, status="success")
    ledger.txn("b1", "B", amount=-20, status="success")
    conn.execute("update ledger.accounts set balance = 80 where account_id = 'B'")
    ledger.account("C", balance=7)
    assert ledger.run("balance_mismatch") == 1
    assert {(e["dedup_key"], e["status"]) for e in ledger.events("balance_mismatch")} == {
        ("A", "resolved"), ("C", "open")}
    # nothing new: the open event of C is checked again (by key) and neither reopened nor resolved
    assert ledger.run("balance_mismatch") == 0
    [c] = ledger.events("balance_mismatch", "open")
    assert (c["dedup_key"], c["occurrences"]) == ("C", 2)


def test_an_incremental_run_finds_what_a_full_pass_finds(ledger, conn):
    """The rows of the late window are read again at every run where row_xmin is unknown: the
    accounts they name are checked again, and nothing is reopened or reported twice."""
    ledger.recent(120)
    for i in range(6):
        ledger.account(f"K{i}", balance=100, opening=100)
    assert ledger.run("balance_mismatch") == 0
    ledger.txn("k1", "K1", amount=-10, status="success", at=0)   # balance not moved: -10
    ledger.txn("k2", "K2", amount=-10, status="pending", at=0)   # nothing to move yet
    conn.execute("update ledger.accounts set balance = 95 where account_id = 'K3'")  # moved with no row
    assert ledger.run("balance_mismatch") == 2
    assert ledger.run("balance_mismatch") == 0                   # the same rows again: nothing new
    conn.execute("update ledger.transactions set status = 'success' where txn_id = 'k2'")
    assert ledger.run("balance_mismatch") == 1
    incremental = {(e["dedup_key"], e["status"], e["amount"]) for e in ledger.events("balance_mismatch")}
    assert incremental == {("K1", "open", 10), ("K2", "open", 10), ("K3", "open", -5)}
    ledger.set_params("balance_mismatch", full_pass="0 seconds")
    assert ledger.run("balance_mismatch") == 0
    assert {(e["dedup_key"], e["status"], e["amount"]) for e in ledger.events("balance_mismatch")} == incremental
