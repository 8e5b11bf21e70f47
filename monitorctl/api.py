"""monitorctl's Python API: every operation of the CLI, for programs (docs/architecture.md, "Layers").

One ``Monitor`` is opened from a DSN and holds one connection, made on first use, pinned
(db.connect) and in autocommit: a method that changes several things says where it commits, and
does it in an explicit transaction. Every statement is a named query of monitorctl/queries.sql.
Results are plain dicts and dataclasses; errors are MonitorError subclasses (monitorctl.errors)
whose message is the one the CLI prints::

    from monitorctl.api import Monitor

    with Monitor("postgresql://localhost/payments") as monitor:
        monitor.run(["failed_debit"])
        with monitor.events(severities=["critical"]) as events:
            for event in events:
                monitor.acknowledge([event["event_id"]], actor="pager")

Besides this connection, the API reaches the database through yoyo's own connection (install
applies migrations with it) and, when pg_cron lives in another database, a connection to that one
(monitorctl.schedule); both are opened and closed inside the method that needs them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import __version__, db, install as inst, mapping, resources, schedule
from .doctor import index_advice
from .errors import DatabaseUnavailable, MonitorError, UsageError
from .model import SEVERITIES, at_least, check_severity, statuses_of
from .notify.manage import Notifications
from .observe import Observation
from .registry import require_available, require_detector

__all__ = ["Monitor", "RunSlice", "Change", "PruneResult", "Transition", "Rows", "SEVERITIES"]

MAX_SLICES = 500  # a backfill's slices grow beyond `slice` rather than number more
DEFAULT_SLICE = dt.timedelta(days=1)
FOLLOW_WINDOW = "15 minutes"  # how far back follow() looks when it starts, for the state it compares with
FOLLOW_SLACK = dt.timedelta(seconds=3)  # each look also re-reads the changes of the seconds before the
# previous look: one stamped just before it may have committed just after (NOTIFY names any later one)
PRUNE_TABLES = ["events", "alert_history", "deliveries", "health_snapshots", "detector_runs", "cron_job_run_details"]


@dataclass
class RunSlice:
    """Where a run is, for a progress callback: detector ``number`` of ``of``, slice ``slice`` of ``slices``."""

    detector: str
    number: int
    of: int
    slice: int
    slices: int
    since: dt.datetime | None
    until: dt.datetime | None


@dataclass
class Change:
    """What a registry change did: the detector rows it returned, and pg_cron's jobs brought in line
    (``scheduling``), or why they were left alone (``scheduling_off``)."""

    detectors: list[dict] = field(default_factory=list)
    scheduling: schedule.SyncReport | None = None
    scheduling_off: str = ""


@dataclass
class Transition:
    """An acknowledge or resolve: how many events changed, and each event's status before."""

    changed: int
    before: dict[int, str]

    @property
    def already_acknowledged(self) -> int:
        return sum(1 for status in self.before.values() if status == "acknowledged")


@dataclass
class PruneResult:
    dry_run: bool
    counts: dict[str, int]  # rows deleted (or, dry run, that would be) per table of PRUNE_TABLES
    note: str = ""  # why pg_cron's run records in another database were left alone, if they were


class Rows(Iterator[dict]):
    """Rows as they come from a server-side cursor, inside the transaction that holds it; the
    transaction ends when the rows are exhausted or ``close()``d (``with`` closes them)."""

    def __init__(self, rows: Iterator[dict]):
        self._rows = rows

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> dict:
        return next(self._rows)

    def close(self) -> None:
        self._rows.close()

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Monitor(Notifications, Observation):
    """The monitor installed in one database.

    ``Monitor(dsn)`` connects on first use (``dsn`` as README.md "Connecting" says: None means
    MONITOR_DSN, DATABASE_URL, then libpq's variables); ``close()`` or ``with`` ends the connection.
    Every method but install, uninstall and migrations first checks that monitor is installed and
    current (else DatabaseUnavailable, exit 3). ``say`` receives progress messages (default: none).
    """

    def __init__(self, dsn: str | None = None, *, say: Callable[[str], None] | None = None):
        self.dsn = db.resolve_dsn(dsn)
        self.say = say or (lambda message: None)
        self._conn: psycopg.Connection | None = None
        self._checked = False

    @classmethod
    def connect(cls, dsn: str | None = None, **kwargs) -> Monitor:
        """A Monitor connected now (a wrong DSN fails here, not at the first call)."""
        monitor = cls(dsn, **kwargs)
        monitor.connection
        return monitor

    @property
    def connection(self) -> psycopg.Connection:
        """The pinned autocommit connection (made on first use)."""
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.dsn)
            self._checked = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _installed(self) -> psycopg.Connection:
        """The connection, once monitor is known to be installed and current."""
        conn = self.connection
        if not self._checked:
            inst.ensure_installed(conn)
            self._checked = True
        return conn

    # -- install ----------------------------------------------------------------------------------

    def install(self, with_ledger: bool = False, config: dict | str | Path | None = None,
                schedule_jobs: bool = True, distributed: bool = False) -> inst.InstallReport:
        """Apply pending migrations, (re)create functions and views, register detectors, and (unless
        ``schedule_jobs`` is false) bring pg_cron's jobs in line. ``config`` is a mapping (a dict as
        read from TOML) or the path of its TOML file; ``distributed`` (with ``with_ledger``, on a Citus
        coordinator) distributes the reference ledger by account (docs/scaling.md). Commits: each
        migration with its record; then the distribution, the sql/ files, mapping, parameters and
        install mark together; then each pg_cron change."""
        cfg = mapping.load(config) if isinstance(config, (str, Path)) else config
        report = inst.install(self.dsn, with_ledger=with_ledger, config=cfg, do_schedule=schedule_jobs,
                              say=self.say, conn=self.connection, distributed=distributed)
        self._checked = False
        return report

    def uninstall_summary(self) -> dict:
        """What uninstall would drop: {'events', 'alert_history', 'detectors'} counts. Refuses (exit 1)
        a role that may not drop schema monitor."""
        return inst.uninstall_summary(self.connection)

    def uninstall(self) -> int:
        """Remove pg_cron's jobs and schema monitor (its migration records with it); the number of jobs
        removed. Each step commits at once."""
        removed = inst.uninstall(self.dsn, say=self.say, conn=self.connection)
        self._checked = False
        return removed

    def migrations(self, show_sql: bool = False) -> list[dict]:
        """Every migration of monitor's and the reference ledger's: {'set', 'id', 'applied'} (and
        'sql' with ``show_sql``). Reads only."""
        return inst.migration_status(self.dsn, show_sql=show_sql, conn=self.connection)

    # -- detectors --------------------------------------------------------------------------------

    def require_detector(self, name: str, with_events: bool = False) -> None:
        """UnknownDetector (exit 2) unless ``name`` is registered (or, ``with_events``, has events)."""
        require_detector(self._installed(), name, with_events=with_events)

    def detectors(self) -> list[dict]:
        """Every registered detector with its settings and parameters (and their defaults)."""
        return db.rows(self._installed(), "detectors_list")

    def enable(self, names: Iterable[str]) -> Change:
        """Enable detectors and schedule their pg_cron jobs: one transaction (docs/cli.md, detectors)."""
        return self._change(lambda conn: [self._configure(conn, n, enabled=True) for n in names])

    def disable(self, names: Iterable[str]) -> Change:
        """Disable detectors and remove their pg_cron jobs: one transaction."""
        return self._change(lambda conn: [self._configure(conn, n, enabled=False) for n in names])

    def configure(self, name: str, params: dict | None = None, schedule: str | None = None,
                  severity: str | None = None) -> Change:
        """Change a detector's parameters (merged, validated), schedule or severity; pg_cron follows.
        A refused value changes nothing (UsageError, exit 2)."""
        if severity is not None:
            check_severity(severity)
        return self._change(lambda conn: [self._configure(conn, name, params, schedule, severity)])

    def add(self, name: str, function: str, severity: str, kind: str, schedule: str = "* * * * *",
            params: dict | None = None, description: str = "") -> Change:
        """Register (or re-register) a custom detector (docs/custom-detectors.md) and schedule it."""
        return self._change(lambda conn: [db.row(conn, "register_detector", {
            "name": name, "function": function, "severity": severity, "kind": kind, "schedule": schedule,
            "params": Jsonb(params or {}), "description": description})])

    def remove(self, name: str) -> Change:
        """Remove a custom detector and its pg_cron job (its events stay until pruned)."""
        def work(conn):
            require_detector(conn, name)
            db.value(conn, "unregister_detector", {"name": name})
            return []
        return self._change(work)

    def sync_schedule(self) -> tuple[schedule.SyncReport | None, str]:
        """Bring pg_cron's jobs in line with the registry now: (what changed, or None and why not)."""
        return schedule.sync(self._installed(), self.dsn)

    @staticmethod
    def _configure(conn, name: str, params: dict | None = None, schedule_: str | None = None,
                   severity: str | None = None, enabled: bool | None = None) -> dict:
        require_detector(conn, name)
        if enabled:
            require_available(conn, name)
        return db.row(conn, "configure_detector", {
            "name": name, "params": Jsonb(params) if params else None, "schedule": schedule_,
            "severity": severity, "enabled": enabled})

    def _change(self, work: Callable) -> Change:
        """``work(conn)`` and the pg_cron sync in one transaction; a refusal changes nothing (a value
        the database refuses is a UsageError, exit 2). pg_cron in another database is outside that
        transaction: after a refusal it is brought back in line with the registry."""
        conn = self._installed()
        change = Change()
        try:
            with conn.transaction():
                change.detectors = work(conn)
                try:
                    change.scheduling, change.scheduling_off = schedule.sync(conn, self.dsn)
                except psycopg.errors.InvalidParameterValue as exc:
                    raise UsageError(f"pg_cron refused it: {exc.diag.message_primary}")
        except BaseException as exc:
            try:  # pg_cron elsewhere is re-aligned; what the sync would change here is rolled back
                with conn.transaction(force_rollback=True):
                    schedule.sync(conn, self.dsn)
            except Exception:  # the original error is the one to report
                pass
            if isinstance(exc, psycopg.errors.InvalidParameterValue):
                raise UsageError(exc.diag.message_primary or str(exc)) from exc
            raise
        return change

    # -- run --------------------------------------------------------------------------------------

    def run(self, detectors: Iterable[str] | None = None, since: dt.timedelta | dt.datetime | None = None,
            slice: dt.timedelta = DEFAULT_SLICE, progress: Callable[[RunSlice], None] | None = None,
            done: Callable[[dict], None] | None = None) -> list[dict]:
        """Run detectors now (default: every enabled one), each with its ``timeout`` parameter as
        statement_timeout, and return one result per detector (new, updated and resolved events,
        duration, status, error). ``since`` (a duration back from now, or a time) re-examines rows
        from then on: a finding detector examines a window longer than ``slice`` a slice at a time,
        oldest first. Each slice is its own transaction, committed before the next: an interruption
        (KeyboardInterrupt) keeps what was done, and running again adds no event twice. A detector
        that fails is reported with status 'error'; it does not stop the others. ``progress`` is called
        before each slice, ``done`` with each detector's result."""
        if slice < dt.timedelta(minutes=1):
            raise UsageError(f"--slice: {int(slice.total_seconds())}s is too short: a slice is at least a minute, "
                             "such as 6h or 1d")
        conn = self._installed()
        known = {r["name"]: r for r in db.rows(conn, "run_targets")}
        names = list(detectors) if detectors else [n for n, r in known.items() if r["enabled"]]
        for name in names:
            if name not in known:
                require_detector(conn, name)
        results = []
        for i, name in enumerate(names, 1):
            now = db.value(conn, "now")
            start = since if isinstance(since, dt.datetime) else (now - since if since else None)
            slices = [(start, None)]
            if start is not None and known[name]["kind"] == "finding" and now - start > slice:
                step = max(slice, (now - start) / MAX_SLICES)  # a window of years: longer slices
                bounds = [start + k * step for k in range(math.ceil((now - start) / step))]
                slices = list(zip(bounds, bounds[1:] + [None]))  # the last one runs to now
            results.append(self._run_slices(conn, name, known[name]["timeout_ms"], slices, i, len(names),
                                            progress))
            if done:
                done(results[-1])
        return results

    def _run_slices(self, conn, name, timeout_ms, slices, number, of, progress) -> dict:
        total: dict | None = None
        for k, (since, until) in enumerate(slices, 1):
            if progress:
                progress(RunSlice(name, number, of, k, len(slices), since, until))
            with conn.transaction():
                db.value(conn, "statement_timeout_local", {"timeout": timeout_ms})
                try:
                    db.value(conn, "run_detector", {"name": name, "since": since, "until": until})
                except psycopg.errors.InvalidParameterValue as exc:  # a --since in the future, say
                    raise UsageError(f"--since: {exc.diag.message_primary}")
            row = db.row(conn, "last_run", (name,))
            if total is None:
                total = row | {"slices": len(slices)}
            else:
                for key in ("events_opened", "events_updated", "events_resolved"):
                    total[key] += row[key]
                total["duration"] += row["duration"]
                total.update(status=row["status"], error=row["error"], finished_at=row["finished_at"])
            if row["status"] == "error":
                if len(slices) > 1:
                    total["error"] = f"slice {k}/{len(slices)} from {since:%Y-%m-%d %H:%M}: {row['error']}"
                break
        return total

    # -- events -----------------------------------------------------------------------------------

    def _filters(self, status, severities, detector, subject, since) -> dict:
        conn = self._installed()
        if detector is not None:
            require_detector(conn, detector, with_events=True)
        for severity in severities or ():
            check_severity(severity)
        return {
            "statuses": statuses_of(status),
            "severities": list(severities) if severities else None,
            "detector": detector,
            "subject": subject,
            "since": since if isinstance(since, dt.timedelta) else None,
            "since_ts": since if isinstance(since, dt.datetime) else None,
        }

    def events(self, status: str | None = "active", severities: Iterable[str] | None = None,
               detector: str | None = None, subject: str | None = None,
               since: dt.timedelta | dt.datetime | None = None, limit: int | None = 100) -> Rows:
        """Events, newest last_seen first, as dicts (the columns of monitor.events that docs/cli.md
        lists). ``status``: open, acknowledged, resolved, active (open and acknowledged) or all;
        ``since``: last seen within this long, or since this time; ``limit`` None or 0: all.

        The rows stream from a server-side cursor in a transaction of their own, which ends when
        they are exhausted or closed: use them in ``with``, or read them to the end."""
        params = self._filters(status, severities, detector, subject, since) | {"limit": limit or None}
        conn = self._installed()

        def rows():
            with conn.transaction():  # a server-side cursor lives in a transaction
                yield from db.stream(conn, "events_list", params)

        return Rows(rows())

    def follow(self, status: str | None = "active", severities: Iterable[str] | None = None,
               detector: str | None = None, subject: str | None = None,
               since: dt.timedelta | dt.datetime | None = None, limit: int | None = 100,
               interval: float = 2.0, on_ready: Callable[[], None] | None = None) -> Iterator[tuple[str, dict]]:
        """The matching events, oldest first, as ('existing', event); then every new or changed one as
        (change, event), change being opened, acknowledged, resolved, severity_changed or updated,
        until the caller stops iterating. ``on_ready`` is called once listening has begun.

        The runner's NOTIFY monitor_events wakes it at once and names the events; polling every
        ``interval`` seconds is the fallback (a pooler may swallow notifications). Each look reads only
        the events changed since the last one (an index on changed_at), so an idle follow costs next to
        nothing however many events are open. Autocommit: each look is its own snapshot."""
        params = self._filters(status, severities, detector, subject, since) | {"limit": limit or None}
        conn = self._installed()
        initial = db.rows(conn, "events_list", params)
        return self._follow(conn, params, initial, interval, on_ready)

    def _follow(self, conn, params, initial, interval, on_ready):
        wanted = set(params["statuses"]) if params["statuses"] else None
        watch = {k: params[k] for k in ("severities", "detector", "subject")}
        try:
            after = db.value(conn, "now") - FOLLOW_SLACK
            with conn.transaction():  # what each event looks like now, to tell a change from a re-read
                seen: dict[int, tuple] = {r["event_id"]: _signature(r) for r in
                                          db.stream(conn, "events_changed", watch | {"window": FOLLOW_WINDOW})}
            shown: set[int] = set()
            db.run(conn, "listen_events")
            for row in reversed(initial):
                shown.add(row["event_id"])
                seen[row["event_id"]] = _signature(row)
                yield "existing", row
            if on_ready:
                on_ready()
            while True:
                notes: list = []
                waited = 0.0
                while not notes and waited < interval:  # in slices of a second: Ctrl-C is seen at once
                    step = min(1.0, interval - waited)
                    notes = list(conn.notifies(timeout=step, stop_after=1))
                    waited += step
                if notes:
                    notes += conn.notifies(timeout=0.1)  # a run announces its events together: take them all
                ids = sorted({_event_id_of(n.payload) for n in notes} - {None})
                looked_at = db.value(conn, "now")
                for row in db.rows(conn, "events_changed_since", watch | {"after": after, "ids": ids}):
                    eid, sig = row["event_id"], _signature(row)
                    before = seen.get(eid, None)
                    if before == sig:
                        continue
                    seen[eid] = sig
                    if eid in shown or wanted is None or row["status"] in wanted:
                        shown.add(eid)
                        yield _change_of(row, before), row
                after = max(after, looked_at - FOLLOW_SLACK)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"lost the database connection while following: {' '.join(str(exc).split())}")

    def active_counts(self, severity: str, detector: str | None = None, subject: str | None = None) -> dict[str, int]:
        """Active events of ``severity`` or a more severe one, counted by severity (most severe first)."""
        rows = db.rows(self._installed(), "events_fail_on", {
            "severities": at_least(check_severity(severity)), "detector": detector, "subject": subject})
        counts = {r["severity"]: r["count"] for r in rows}
        return {s: counts[s] for s in SEVERITIES if s in counts}

    def fail_on(self, severity: str, detector: str | None = None, subject: str | None = None) -> None:
        """MonitorError (exit 1) when an active event of ``severity`` or a more severe one exists."""
        counts = self.active_counts(severity, detector, subject)
        if counts:
            what = ", ".join(f"{n} {s}" for s, n in counts.items())
            raise MonitorError(f"active events of severity {severity} or worse: {what}")

    def event(self, event_id: int) -> tuple[dict | None, list[dict]]:
        """One event and its timeline from monitor.alert_history; (None, history) for a pruned event
        whose history remains. MonitorError (exit 1) when neither exists."""
        conn = self._installed()
        event = db.row(conn, "event_one", {"id": event_id})
        history = db.rows(conn, "event_history", {"id": event_id})
        if event is None and not history:
            raise MonitorError(f"event {event_id} does not exist")
        return event, history

    def acknowledge(self, ids: Iterable[int], actor: str | None = None) -> Transition:
        """Acknowledge events (monitor.acknowledge): all or nothing, one transaction. An unknown or
        resolved id changes nothing (MonitorError, exit 1); an acknowledged one stays as it is.
        ``actor`` is recorded in the history (default: the database user)."""
        return self._transition("acknowledge", {"ids": ids, "actor": actor})

    def resolve(self, ids: Iterable[int], note: str | None = None, actor: str | None = None) -> Transition:
        """Resolve events (monitor.resolve), with an optional note: all or nothing, one transaction. An
        unknown or resolved id changes nothing (MonitorError, exit 1)."""
        return self._transition("resolve", {"ids": ids, "note": note, "actor": actor})

    def _transition(self, name: str, params: dict) -> Transition:
        conn = self._installed()
        params = params | {"ids": sorted(set(params["ids"]))}
        try:
            with conn.transaction():
                before = {r["event_id"]: r["status"] for r in db.rows(conn, "event_statuses", params)}
                changed = db.value(conn, name, params)
        except (psycopg.errors.NoDataFound, psycopg.errors.InvalidParameterValue) as exc:
            raise MonitorError(f"{exc.diag.message_primary}; nothing was changed")
        return Transition(changed, before)

    def load_festival(self, cards: int = 3000, hours: int = 4, seed: float = 0.42) -> dict:
        """The demo's synthetic festival (monitorctl/festival.sql: cards, top-ups, payments, scans and
        injected incidents) loaded into the empty reference ledger, in one transaction; its counts."""
        conn = self._installed()
        db.value(conn, "festival_settings", {"cards": str(cards), "hours": str(hours), "seed": str(seed)})
        counts = None
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(resources.festival_sql())
            while True:  # the counts are the result of its last query
                if cur.description:
                    counts = cur.fetchone()
                if not cur.nextset():
                    break
        return counts

    # -- status, prune, doctor --------------------------------------------------------------------

    def status(self) -> dict:
        """The monitor's own state (docs/cli.md, status): pg_cron, every detector, active events by
        severity, migrations, source notes and a health verdict. Reads only."""
        conn = self._installed()
        misc = db.row(conn, "status_misc")
        cron, jobs = _cron_state(conn, self.dsn, misc["user"])
        detectors = db.rows(conn, "status_detectors")
        _judge(conn, detectors)
        for d in detectors:
            d["cron_schedule"] = jobs.get(d["name"], {}).get("schedule")
            d["duration_seconds"] = d["duration"].total_seconds() if d["duration"] is not None else None
        events = {r["severity"]: {"open": r["open"], "acknowledged": r["acknowledged"]}
                  for r in db.rows(conn, "status_events", {"severities": list(SEVERITIES)})}
        full_pass = next((d["params"].get("full_pass") for d in detectors if d["name"] == "balance_mismatch"), None)
        problems = []
        if events["critical"]["open"]:
            problems.append(f"{events['critical']['open']} critical event(s) open")
        problems += [d["problem"] for d in detectors if d["problem"] and d["enabled"]]
        receivers = db.rows(conn, "receivers_list", {"name": None})
        notifications = {
            "routes": db.value(conn, "routes_count"),
            "receivers": [{k: r[k] for k in ("name", "type", "secret", "circuit", "failures", "open_until",
                                             "pending", "failed", "dead", "last_sent")} for r in receivers]}
        problems += [f"receiver {r['name']}: circuit open after {r['failures']} failures"
                     for r in receivers if r["circuit"] == "open"]
        # deliveries given up since the receiver last took one (a later success settles them: it is up)
        problems += [f"receiver {r['name']}: {r['dead_unsettled']} delivery(ies) given up since it last took one "
                     "(monitorctl deliveries --status dead)" for r in receivers if r["dead_unsettled"]]
        return {
            "database": misc["database"],
            "user": misc["user"],
            "checked_at": misc["checked_at"],
            "monitorctl": __version__,
            "schema": {"version": resources.schema_version(), "applied": inst.applied_ids(conn) or [],
                       "pending": inst.pending_ids(conn)},
            "pg_cron": cron,
            "detectors": [{k: d.get(k) for k in STATUS_DETECTOR_KEYS} for d in detectors],
            "events": events,
            "sources": {"notes": _source_notes(misc["mapping"], full_pass)},
            "notifications": notifications,
            "health": {"healthy": not problems, "problems": problems},
        }

    def prune(self, dry_run: bool = False, events_days: int | None = None,
              history_days: int | None = None) -> PruneResult:
        """Retention now (docs/operations.md, "Retention"): CALL monitor.prune, which deletes in bounded
        batches and commits between them, then pg_cron's run records of this database's jobs when
        pg_cron lives in another database (schedule.prune_runs, batches each committed)."""
        conn = self._installed()
        counts = db.row(conn, "prune", {"dry_run": dry_run, "events_days": events_days,
                                        "history_days": history_days})
        remote, note = schedule.prune_runs(conn, self.dsn, dry_run)
        if remote is not None:
            counts["cron_job_run_details"] = (counts.get("cron_job_run_details") or 0) + remote
        return PruneResult(dry_run, {t: counts.get(t) or 0 for t in PRUNE_TABLES}, note)

    def doctor(self) -> list[dict]:
        """The indexes the detectors read through on the mapped tables: one dict per need, with status
        ok, missing (and a CREATE INDEX suggestion), expression or unknown. Reads only."""
        conn = self._installed()
        return [{"status": a.status, "relation": a.relation, "columns": ", ".join(a.columns),
                 "needed_by": a.needed_by, "suggestion": a.suggestion}
                for a in index_advice(conn, inst.stored_mapping(conn))]


# -- helpers of follow and status -----------------------------------------------------------------

STATUS_DETECTOR_KEYS = ["name", "enabled", "severity", "kind", "schedule", "scheduled", "cron_schedule", "last_run",
                        "duration_seconds", "last_status", "last_error", "last_ok", "open_events", "overdue", "state",
                        "problem"]


def _signature(row: dict) -> tuple:
    """What makes a change worth reporting: not a mere last_seen or occurrences bump, nor a condition's
    summary that restates how long it has held; a finding's summary changes when it grows."""
    summary = row["summary"] if row["kind"] == "finding" else None
    return (row["status"], row["severity"], row["amount"], row["resolution_note"], summary)


def _change_of(row: dict, before: tuple | None) -> str:
    if before is None:
        return "opened" if row["status"] == "open" else row["status"]
    if before[0] != row["status"]:
        return row["status"]
    if before[1] != row["severity"]:
        return "severity_changed"
    return "updated"


def _event_id_of(payload: str) -> int | None:
    """The event a monitor_events notification names (anyone may send one: anything else is ignored)."""
    import json

    try:
        value = json.loads(payload).get("event_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _cron_state(conn, dsn: str, user: str) -> tuple[dict, dict]:
    """pg_cron as this database sees it, and this database's jobs by detector name."""
    site, why = schedule.locate(conn, dsn)
    if site is None:
        return {"available": False, "note": why}, {}
    state = {"available": True, "version": site.version, "database": site.database, "jobs": None}
    try:
        have = schedule.existing_jobs(site)
    except psycopg.errors.InsufficientPrivilege as exc:
        state["in_sync"] = None
        state["note"] = (f"role {user} may not read pg_cron's jobs ({exc.diag.message_primary}): "
                         "the owner of schema monitor can check them")
        return state, {}
    finally:
        site.close()
    state["jobs"] = len(have)
    owner = db.value(conn, "monitor_owner")
    if owner != user:
        state["in_sync"] = None
        state["note"] = f"the jobs belong to {owner}, who installed monitor; role {user} cannot see them"
        return state, {}
    by_detector = {name[len(site.prefix):]: {"schedule": row[2], "active": row[5]} for name, row in have.items()}
    if not schedule.enabled(conn):
        state["in_sync"] = None
        state["note"] = ("scheduling is off (`monitorctl install --no-schedule`): monitorctl leaves pg_cron's jobs "
                         "as they are; `monitorctl install` schedules again")
        return state, by_detector
    want = schedule.desired_jobs(conn, site)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    different = sorted(n for n in set(want) & set(have)
                       if (have[n][2], have[n][3], have[n][4], have[n][5]) != (*want[n], True))
    state.update(in_sync=not (missing or extra or different), missing=missing, extra=extra, different=different)
    return state, by_detector


def _judge(conn, detectors: list[dict]) -> None:
    """Each detector's state; failing and overdue as detector_health judges them (docs/detectors.md)."""
    problems = {r["subject"]: (r["problem"], r["summary"]) for r in db.rows(conn, "detector_health_now")}
    for d in detectors:
        problem, summary = problems.get(d["name"], (None, None))
        d["problem"] = summary
        d["overdue"] = problem == "overdue"
        if not d["enabled"]:
            d["state"] = "disabled"
        elif problem in ("failed", "cron_job_failed"):
            d["state"] = "failing"
        elif problem:
            d["state"] = problem
        elif d["last_status"] is None:
            d["state"] = "never run"
        else:
            d["state"] = d["last_status"]
        if problem == "cron_job_failed" and not d["last_error"]:
            d["last_error"] = summary


def _source_notes(mapping_: dict | None, full_pass: str | None) -> list[str]:
    notes = []
    sources = (mapping_ or {}).get("sources", {})
    for rel in ("transactions", "accounts"):
        cols = sources.get(rel, {}).get("columns", {})
        if sources and cols.get("updated_at") is None:
            notes.append(f"{rel}.updated_at is not mapped: a change to an old {rel[:-1]} row is caught by "
                         f"balance_mismatch's full pass (every {full_pass or '1 hour'}), not by the next run")
    return notes
