"""Test helpers: write reference-ledger rows and read back what the runner made of them."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg.rows import dict_row


class Ledger:
    """Rows in ledger.* at times relative to a base time T (default: 30 minutes before now)."""

    def __init__(self, conn, base: datetime | None = None):
        self.conn = conn
        self.T = base or conn.execute("select date_trunc('second', now()) - interval '30 minutes'").fetchone()[0]

    def recent(self, seconds_ago: int = 600) -> "Ledger":
        """Move the base time to `seconds_ago` before now (for rows later runs must still see)."""
        self.T = self.conn.execute("select date_trunc('second', now()) - make_interval(secs => %s)",
                                   (seconds_ago,)).fetchone()[0]
        return self

    def at(self, seconds: float) -> datetime:
        return self.T + timedelta(seconds=seconds)

    def account(self, aid: str, balance=0, opening=0) -> None:
        self.conn.execute(
            "insert into ledger.accounts (account_id, balance, opening_balance) values (%s, %s, %s)"
            " on conflict (account_id) do update set balance = excluded.balance,"
            " opening_balance = excluded.opening_balance", (aid, balance, opening))

    def txn(self, tid: str, aid: str, amount=-1, status="success", at: float = 0, before=None, after=None,
            device=None) -> None:
        self.account_exists(aid)
        t = self.at(at)
        self.conn.execute(
            "insert into ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after,"
            " device_id, created_at, updated_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (tid, aid, amount, status, before, after, device, t, t))

    def scan(self, sid: str, aid: str, at: float = 0, device=None) -> None:
        self.account_exists(aid)
        self.conn.execute("insert into ledger.scans (scan_id, account_id, device_id, scanned_at)"
                          " values (%s, %s, %s, %s)", (sid, aid, device, self.at(at)))

    def account_exists(self, aid: str) -> None:
        self.conn.execute("insert into ledger.accounts (account_id) values (%s) on conflict do nothing", (aid,))

    def run(self, detector: str, since: datetime | None = None) -> int:
        return self.conn.execute("select monitor.run_detector(%s, %s)", (detector, since)).fetchone()[0]

    def last_run(self, detector: str) -> dict:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute("select * from monitor.detector_runs where detector = %s"
                               " order by run_id desc limit 1", (detector,)).fetchone()

    def events(self, detector: str, status: str | None = None) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "select * from monitor.events where detector = %s and (%s::text is null or status = %s)"
                " order by event_id", (detector, status, status)).fetchall()

    def keys(self, detector: str, status: str | None = None) -> list[str]:
        return [e["dedup_key"] for e in self.events(detector, status)]

    def history(self, event_id: int) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "select transition from monitor.alert_history where event_id = %s order by history_id", (event_id,))]

    def set_params(self, detector: str, **params) -> None:
        from psycopg.types.json import Jsonb
        self.conn.execute("select monitor.set_params(%s, %s)", (detector, Jsonb(params)))
