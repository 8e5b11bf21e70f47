"""An independent model of the detector rules of docs/detectors.md, for a static ledger.

Given plain rows and the run time, it says which events one run of each detector opens when
`since` reaches back before every row. It is written from the rules of docs/detectors.md, read as:

* "within W" is inclusive: a difference of exactly W counts;
* "the trailing W" is the closed range [now - W, now];
* orderings break ties on the id compared as text in byte order. For str values encoded as
  UTF-8, Python's comparison (by code point) is that byte order.

Rows are dicts with the logical columns of README.md:

* account:     account_id, balance, opening_balance
* transaction: txn_id, account_id, amount, status, balance_before, balance_after, created_at
* scan:        scan_id, account_id, scanned_at

Money is Decimal, times are aware datetimes, intervals are timedeltas.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

DETECTORS = ("failed_debit", "balance_mismatch", "balance_chain", "consecutive_failures", "negative_balance",
             "stuck_pending", "failure_rate", "duplicate_scan", "concurrent_txn")

DEFAULTS = {
    "balance_mismatch": {"tolerance": Decimal("0.01")},
    "consecutive_failures": {"count": 3, "window": timedelta(minutes=10)},
    "stuck_pending": {"age": timedelta(minutes=10)},
    "failure_rate": {"window": timedelta(minutes=15), "min_volume": 20, "threshold": Fraction(5, 100)},
    "duplicate_scan": {"window": timedelta(seconds=5), "min_count": 2},
    "concurrent_txn": {"window": timedelta(seconds=2), "min_count": 2},
}


def expected(accounts, transactions, scans, now: datetime, params=DEFAULTS) -> set[tuple[str, str]]:
    """The (detector, dedup_key) pairs that are open after one run of every detector."""
    return set(expected_events(accounts, transactions, scans, now, params))


def expected_events(accounts, transactions, scans, now: datetime, params=DEFAULTS) -> dict:
    """{(detector, dedup_key): {subject, txn_id, amount}} for the events one run opens."""
    out: dict = {}

    def event(detector, key, subject, txn_id=None, amount=None):
        assert (detector, key) not in out, f"two {detector} events for key {key!r}"
        out[(detector, key)] = {"subject": subject, "txn_id": txn_id, "amount": amount}

    # failed_debit: a failed transaction with both balances recorded that still took money.
    for t in transactions:
        before, after = t["balance_before"], t["balance_after"]
        if t["status"] == "failed" and before is not None and after is not None and after < before:
            event("failed_debit", t["txn_id"], t["account_id"], t["txn_id"], before - after)

    # balance_mismatch: balance against opening balance + the account's successful amounts.
    tolerance = params["balance_mismatch"]["tolerance"]
    settled: dict = defaultdict(Decimal)
    for t in transactions:
        if t["status"] == "success":
            settled[t["account_id"]] += t["amount"]
    for a in accounts:
        diff = a["balance"] - (a["opening_balance"] + settled[a["account_id"]])
        if abs(diff) > tolerance:
            event("balance_mismatch", a["account_id"], a["account_id"], None, diff)

    # negative_balance: strictly below zero.
    for a in accounts:
        if a["balance"] < 0:
            event("negative_balance", a["account_id"], a["account_id"], None, a["balance"])

    # stuck_pending: pending and created more than `age` before the run.
    age = params["stuck_pending"]["age"]
    for t in transactions:
        if t["status"] == "pending" and now - t["created_at"] > age:
            event("stuck_pending", t["txn_id"], t["account_id"], t["txn_id"], t["amount"])

    # failure_rate: over the closed range [now - window, now].
    fr = params["failure_rate"]
    in_window = [t for t in transactions
                 if now - fr["window"] <= t["created_at"] <= now and t["status"] in ("success", "failed")]
    failed = sum(1 for t in in_window if t["status"] == "failed")
    total = len(in_window)
    if total >= fr["min_volume"] and total > 0 and Fraction(failed, total) > fr["threshold"]:
        event("failure_rate", "system", "system")

    by_account = defaultdict(list)
    for t in transactions:
        by_account[t["account_id"]].append(t)

    # consecutive_failures: per account, by created_at then txn_id, pending skipped; a maximal run
    # of failed ones that holds `count` consecutive failures within `window`, first to last.
    cf = params["consecutive_failures"]
    for account, rows in by_account.items():
        ordered = sorted((t for t in rows if t["status"] != "pending"),
                         key=lambda t: (t["created_at"], t["txn_id"]))
        for run in _runs(ordered, lambda t: t["status"] == "failed"):
            n = cf["count"]
            times = [t["created_at"] for t in run]
            if len(run) >= n and any(times[i + n - 1] - times[i] <= cf["window"]
                                     for i in range(len(run) - n + 1)):
                event("consecutive_failures", run[0]["txn_id"], account, run[0]["txn_id"])

    # concurrent_txn: bursts of one account's debits (amount < 0: the paying side), any status.
    ct = params["concurrent_txn"]
    for account, rows in by_account.items():
        for burst in bursts([t for t in rows if t["amount"] < 0], "created_at", "txn_id", ct["window"]):
            if len(burst) >= ct["min_count"]:
                event("concurrent_txn", burst[0]["txn_id"], account, burst[0]["txn_id"],
                      sum((t["amount"] for t in burst), Decimal(0)))

    # balance_chain: in each account's rows with both balances, ordered by time then id, every row
    # whose balance_before is not the previous row's balance_after (a link), or, for a success,
    # whose balance_after is not balance_before + amount (a sum); the next row is judged against the
    # row as written.
    for account, rows in by_account.items():
        prev = None
        for t in sorted((t for t in rows if t["balance_before"] is not None and t["balance_after"] is not None),
                        key=lambda t: (t["created_at"], t["txn_id"])):
            if prev is not None and t["balance_before"] != prev["balance_after"]:
                event("balance_chain", t["txn_id"], account, t["txn_id"], t["balance_before"] - prev["balance_after"])
            elif t["status"] == "success" and t["balance_after"] != t["balance_before"] + t["amount"]:
                event("balance_chain", t["txn_id"], account, t["txn_id"],
                      t["balance_after"] - (t["balance_before"] + t["amount"]))
            prev = t

    # duplicate_scan: bursts of one account's scans.
    ds = params["duplicate_scan"]
    scans_by_account = defaultdict(list)
    for s in scans:
        scans_by_account[s["account_id"]].append(s)
    for account, rows in scans_by_account.items():
        for burst in bursts(rows, "scanned_at", "scan_id", ds["window"]):
            if len(burst) >= ds["min_count"]:
                event("duplicate_scan", burst[0]["scan_id"], account)

    return out


def bursts(rows, time_key: str, id_key: str, window: timedelta) -> list[list[dict]]:
    """Maximal bursts: ordered by time then id, each row within `window` of the previous one."""
    ordered = sorted(rows, key=lambda r: (r[time_key], r[id_key]))
    out: list[list[dict]] = []
    for r in ordered:
        if out and r[time_key] - out[-1][-1][time_key] <= window:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _runs(ordered, member) -> list[list]:
    """Maximal runs of consecutive elements for which member() holds."""
    out, cur = [], []
    for x in ordered:
        if member(x):
            cur.append(x)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def volume_anomalous(samples: list[int], observed: int, sigma=3, min_samples=2) -> bool:
    """volume_anomaly's test for one hour, exactly (in rationals).

    `samples` are the counts of the same hour of the week in the baseline (hours without
    transactions count as 0). Fires when at least `min_samples` exist and
    |observed - mean| > sigma * max(sample stddev, sqrt(mean), 1) * sqrt(1 + 1/n).
    """
    n = len(samples)
    if n < min_samples or n == 0:
        return False
    mean = Fraction(sum(samples), n)
    var = sum((Fraction(s) - mean) ** 2 for s in samples) / (n - 1) if n > 1 else Fraction(0)
    # both sides are non-negative, so compare squares: no square roots, no rounding; the factor
    # (1 + 1/n) widens the band to a prediction interval for one new hour (CHANGELOG.md, 0.1.0)
    return (observed - mean) ** 2 > Fraction(sigma) ** 2 * max(var, mean, Fraction(1)) * (1 + Fraction(1, n))
