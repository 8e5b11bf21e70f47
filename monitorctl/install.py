"""install / uninstall / migration state.

The whole install (migrations and the re-runnable ``sql/``) runs under one session-level advisory
lock, so concurrent installs serialise and a stale yoyo lock left by a killed install is cleared.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import jinja2
import psycopg
from psycopg.types.json import Jsonb
from yoyo import get_backend, read_migrations

from . import __version__, citus, db, mapping as mapping_mod, resources, schedule
from .db import connect, query, yoyo_uri
from .errors import DatabaseUnavailable, MonitorError, UsageError
from .registry import require_available, require_detector

INSTALL_LOCK = (472101, 1)  # advisory lock keys held for the whole install / uninstall
MIGRATION_TABLE = "_yoyo_migration"


@dataclass
class InstallReport:
    applied: list[str] = field(default_factory=list)
    scheduling: schedule.SyncReport | None = None
    scheduling_off: str = ""


@contextmanager
def install_lock(conn, say=lambda msg: None):
    """The install lock of this database; while another session holds it, say who before waiting."""
    if not db.value(conn, "install_lock_try", INSTALL_LOCK):
        row = conn.execute(query("install_lock_holder"), INSTALL_LOCK).fetchone()
        if not (row is None and db.value(conn, "install_lock_try", INSTALL_LOCK)):  # (a holder that let go
            who = (f"pid {row[0]}, user {row[1]}, application {row[2]!r}, "  # in between: nothing to wait for)
                   f"connected since {row[3]:%Y-%m-%d %H:%M:%S}" if row and row[1]
                   else f"pid {row[0]}" if row else "a session that just let go")
            say(f"waiting for the install lock of this database, held by {who}: another install or uninstall, "
                f"or a session holding pg_advisory_lock{INSTALL_LOCK} (ends when it does)")
            db.value(conn, "install_lock_wait", INSTALL_LOCK)
    try:
        yield
    finally:
        db.value(conn, "install_lock_release", INSTALL_LOCK)


def applied_ids(conn) -> list[str] | None:
    """Migration ids recorded in this database, or None when monitor was never installed."""
    if not db.value(conn, "monitor_installed"):
        return None
    return [r[0] for r in conn.execute(query("applied_migrations"))]


def known_ids() -> set[str]:
    return set(resources.migration_ids("monitor")) | set(resources.migration_ids("ledger"))


def check_not_newer(conn) -> None:
    applied = applied_ids(conn) or []
    unknown = sorted(set(applied) - known_ids())
    if unknown:
        raise DatabaseUnavailable(
            f"this database was migrated by a newer monitorctl (migration {unknown[-1]}); "
            f"this build ({__version__}) installs schema {resources.schema_version()}: upgrade monitorctl")


def pending_ids(conn) -> list[str]:
    applied = set(applied_ids(conn) or [])
    return [m for m in resources.migration_ids("monitor") if m not in applied]


def ensure_installed(conn) -> None:
    """For every command but install: the schema is there and current, and its install finished."""
    if applied_ids(conn) is None:
        raise DatabaseUnavailable("monitor is not installed in this database: run `monitorctl install`")
    check_not_newer(conn)
    if pending_ids(conn):
        raise DatabaseUnavailable("monitor's schema is out of date: run `monitorctl install` to upgrade it")
    if conn.execute(query("installed_schema")).fetchone()[0] != resources.schema_version():
        raise DatabaseUnavailable("monitor's install did not finish (its functions and views are missing or "
                                  "older than its schema): run `monitorctl install`")
    missing = conn.execute(query("missing_views")).fetchone()[0]
    if missing:
        raise DatabaseUnavailable(f"{missing} is missing (dropped with something it depended on?): "
                                  "run `monitorctl install` to make it again")


def apply_migrations(dsn: str, which: str) -> list[str]:
    backend = get_backend(yoyo_uri(dsn), migration_table=MIGRATION_TABLE)
    try:
        backend.break_lock()  # we hold the install lock: any yoyo lock row left is stale
        migrations = read_migrations(str(resources.migrations_dir(which)))
        with backend.lock():
            todo = backend.to_apply(migrations)
            for migration in todo:
                _apply_one(backend, migration)
        return [m.id for m in todo]
    finally:
        backend.connection.close()


def _apply_one(backend, migration) -> None:
    """Apply one migration and record it in the same transaction.

    yoyo's own apply_one commits the migration on a second connection and records it afterwards, so
    an install killed in between would leave it applied but unrecorded, and every later install
    would fail re-applying it.
    """
    migration.load()
    if not migration.use_transactions:
        backend.apply_one(migration)
        return
    with backend.transaction():
        migration.process_steps(backend, "apply")
        backend.log_migration(migration, "apply")
        backend.mark_one(migration, log=False)


def stored_mapping(conn) -> dict | None:
    if not db.value(conn, "has_settings"):
        return None
    return db.value(conn, "stored_mapping")


def resolve_mapping(conn, with_ledger: bool, config: dict | None) -> dict:
    """The mapping to install: the config's sources, else the stored mapping, else (--with-ledger) the
    reference ledger's; a config's amount_scale applies to whichever it is."""
    config = config or {}
    stored = stored_mapping(conn)
    if config.get("sources"):
        found = config
    elif stored:
        found = stored
    elif with_ledger:
        found = mapping_mod.ledger_mapping()
    else:
        raise UsageError("no source mapping: pass --with-ledger (reference ledger) or --config FILE (your tables)")
    if "amount_scale" in config:
        found = dict(found, amount_scale=config["amount_scale"])
    return mapping_mod.stored_form(found)


def render_sql(conn, context: dict) -> list[tuple[str, str]]:
    """The sql/ files in order, templates rendered: [(file name, SQL)]."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    out = []
    for path in sorted(resources.sql_dir().iterdir()):
        if path.name.endswith(".sql"):
            out.append((path.name, path.read_text()))
        elif path.name.endswith(".sql.j2"):
            out.append((path.name, env.from_string(path.read_text()).render(**context)))
    return out


def install(dsn: str, with_ledger: bool = False, config: dict | None = None, do_schedule: bool = True,
            say=lambda msg: None, conn=None, distributed: bool = False) -> InstallReport:
    """Install or upgrade, on ``conn`` (an autocommit connection to ``dsn``) or a connection of its own.

    Migrations are applied by yoyo on its own connection, each in one transaction with its record;
    the distribution of the reference ledger (``distributed``, with ``with_ledger``, on a Citus
    coordinator), the re-runnable sql/ files, the mapping, the parameters of ``config`` and the install
    mark are committed together in one transaction; pg_cron's jobs are synchronised afterwards."""
    if distributed and not with_ledger:
        raise UsageError("--distributed distributes the reference ledger: pass --with-ledger too (your own tables "
                         "you distribute yourself, docs/scaling.md)")
    report = InstallReport()
    with (nullcontext(conn) if conn is not None else connect(dsn)) as conn:
        check_not_newer(conn)  # at once, rather than after waiting for another install's lock
        with install_lock(conn, say):
            report = _install(conn, dsn, with_ledger, config, do_schedule, say, report, distributed)
    return report


def _install(conn, dsn, with_ledger, config, do_schedule, say, report, distributed=False) -> InstallReport:
    """install() under the install lock."""
    check_not_newer(conn)
    citus_version = citus.version(conn)
    citus.refuse_worker(conn)  # before anything changes
    if distributed:
        citus.require_coordinator(conn)
    # the mapping is checked before anything changes, unless its tables come with the install (the
    # reference ledger of a first --with-ledger)
    mapping = warnings = None
    if (config and config.get("sources")) or stored_mapping(conn) or not with_ledger:
        mapping = resolve_mapping(conn, with_ledger, config)
        warnings = mapping_mod.check_database(conn, mapping)
    fresh = applied_ids(conn) is None
    ledger_existed = db.value(conn, "ledger_exists")
    try:
        conn.execute(query("ensure_roles"))  # cluster-wide: safe against a concurrent install elsewhere
        db.run(conn, "create_monitor_schema")
        ledger_installed = bool(set(applied_ids(conn) or []) & set(resources.migration_ids("ledger")))
        report.applied += apply_migrations(dsn, "monitor")
        if with_ledger or ledger_installed:  # an upgrade brings the reference ledger up to date too
            report.applied += apply_migrations(dsn, "ledger")
        for mid in report.applied:
            say(f"applied migration {mid}")
        if mapping is None:
            mapping = resolve_mapping(conn, with_ledger, config)
            warnings = mapping_mod.check_database(conn, mapping)
        for warning in warnings:
            say(f"warning: config: {warning}")
        before = stored_mapping(conn)
        with conn.transaction():
            if distributed:  # in this transaction: the source views below are made over the distributed tables
                citus.distribute_ledger(conn)
            if before is not None and before != mapping:
                # what the detectors cached was read through the old mapping (its units, filters,
                # legs, words): made again from the new one by their next run, a full pass
                db.run(conn, "reset_source_caches")
            conn.execute(query("store_mapping"), (Jsonb(mapping),))
            for name, text in render_sql(conn, mapping_mod.template_context(conn, mapping)):
                try:
                    conn.execute(text)
                except Exception as exc:
                    raise MonitorError(f"install failed in sql/{name}: {str(exc).splitlines()[0]}") from exc
            problem = conn.execute(query("sources_problem")).fetchone()[0]
            if problem:  # behind the views just made: nothing of another role's (docs/security.md)
                raise UsageError(f"config: sources: {problem}")
            set_unavailable(conn, mapping, say)
            for detector, params in ((config or {}).get("detectors") or {}).items():
                params = dict(params)
                enabled = params.pop("enabled", None)
                if params:
                    set_params(conn, detector, params, where=f"config: [detectors.{detector}]: ")
                if enabled is not None:
                    set_enabled(conn, detector, enabled, where=f"config: [detectors.{detector}]: ")
            conn.execute(query("set_scheduling"), (do_schedule,))
            conn.execute(query("mark_installed"), (Jsonb(resources.schema_version()),))
    except BaseException:
        if fresh:  # a first install that failed leaves nothing behind
            db.run(conn, "drop_monitor_schema")
            if with_ledger and not ledger_existed:
                db.run(conn, "drop_ledger_schema")
        raise
    if distributed:
        say("the reference ledger is distributed by account_id (ledger.accounts, ledger.transactions and "
            "ledger.scans co-located)")
    say(f"installed monitor schema {resources.schema_version()} and {len(render_sql_names())} SQL files")
    if citus_version:
        say(f"Citus {citus_version}: monitor's tables and pg_cron's jobs are on this coordinator; `monitorctl doctor` "
            "says how the mapped tables are distributed")
    stale = conn.execute(query("unregistered_custom")).fetchone()[0]
    if stale:
        say(f"note: custom detectors {stale} must be registered again (monitorctl detectors add ...): their runs "
            "are refused until then (docs/security.md)")
    if do_schedule:
        report.scheduling, report.scheduling_off = schedule.sync(conn, dsn)
    else:
        report.scheduling_off = ("--no-schedule was given: pg_cron's jobs are left as they are, also by later "
                                 "`monitorctl detectors` changes, until an install without it")
    return report


def render_sql_names() -> list[str]:
    return [p.name for p in sorted(resources.sql_dir().iterdir()) if ".sql" in p.name]


def set_unavailable(conn, mapping: dict, say) -> None:
    """Turn off the built-in detectors the mapping gives nothing to read (and say why); turn back on
    those a previous mapping had turned off that now have their sources."""
    before = db.value(conn, "unavailable_detectors") or {}
    was = db.value(conn, "unavailable_was_enabled") or {}  # as the user had them when turned off
    now = mapping_mod.unavailable(mapping)
    for name in sorted(set(before) - set(now)):
        if was.pop(name, True):
            configure_enabled(conn, name, True)
            say(f"{name} is on again: the mapping now gives it what it reads")
    for name, why in sorted(now.items()):
        if name not in before:
            was[name] = bool(db.value(conn, "detector_enabled", {"name": name}))
            say(f"{name} is off: {why}")
        configure_enabled(conn, name, False)
    db.run(conn, "store_unavailable", {"why": Jsonb(now), "was": Jsonb(was)})


def set_enabled(conn, detector: str, enabled: bool, where: str = "") -> None:
    """Enable or disable one detector (refused for one the mapping gives nothing to read)."""
    require_detector(conn, detector)
    if enabled:
        require_available(conn, detector, where)
    configure_enabled(conn, detector, enabled)


def configure_enabled(conn, detector: str, enabled: bool) -> None:
    """The enabled flag alone, through monitor.configure_detector (as `detectors enable|disable`)."""
    db.row(conn, "configure_detector", {"name": detector, "params": None, "schedule": None, "severity": None,
                                        "enabled": enabled})


def set_params(conn, detector: str, params: dict, where: str = "") -> dict:
    """Merge and validate parameters of one detector (monitor.set_params); bad ones exit 2."""
    try:
        with conn.transaction():
            require_detector(conn, detector)
            return db.value(conn, "set_params", {"name": detector, "params": Jsonb(params)})
    except UsageError as exc:
        raise UsageError(where + str(exc))
    except psycopg.errors.InvalidParameterValue as exc:
        raise UsageError(where + (exc.diag.message_primary or str(exc)))


def uninstall_summary(conn) -> dict:
    if applied_ids(conn) is None:
        raise DatabaseUnavailable("monitor is not installed in this database: nothing to uninstall")
    check_not_newer(conn)
    row = conn.execute(query("uninstall_summary")).fetchone()
    if not row[3]:
        raise MonitorError(f"permission denied: only {row[4]}, the owner of schema monitor, or a superuser may "
                           "uninstall it")
    return {"events": row[0], "alert_history": row[1], "detectors": row[2]}


def uninstall(dsn: str, say=lambda msg: None, conn=None) -> int:
    """Remove pg_cron's jobs, then schema monitor (autocommit: each step is committed at once)."""
    with (nullcontext(conn) if conn is not None else connect(dsn)) as conn, install_lock(conn, say):
        removed = schedule.remove_all(conn, dsn)
        db.run(conn, "drop_monitor_schema")
        say(f"dropped schema monitor and its migration records; removed {removed} pg_cron jobs")
        return removed


def migration_status(dsn: str, show_sql: bool = False, conn=None) -> list[dict]:
    with nullcontext(conn) if conn is not None else connect(dsn) as conn:
        applied = set(applied_ids(conn) or [])
        check_not_newer(conn)
    rows = []
    for which in ("monitor", "ledger"):
        for mid in resources.migration_ids(which):
            row = {"set": which, "id": mid, "applied": mid in applied}
            if show_sql:
                row["sql"] = (resources.migrations_dir(which) / f"{mid}.sql").read_text()
            rows.append(row)
    return rows

