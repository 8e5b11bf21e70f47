"""The source mapping (docs/mapping.md): which user tables and columns feed the three source views.

A mapping is a plain dict, as read from the TOML file::

    {"sources": {"transactions": {"relation": "public.t", "columns": {"txn_id": "id", ...}}, ...},
     "amount_scale": 100,
     "detectors": {"duplicate_scan": {"window": "3 seconds"}}}

Everything is checked before anything in the database changes; a problem is reported as one line
naming the key. docs/mapping.md documents every key this module accepts (a test holds them equal:
``documented_keys``).
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

from . import citus
from .db import query
from .errors import MonitorError, UsageError

# logical relation -> column -> required? (transactions: account_id, or debit_account with credit_account)
COLUMNS: dict[str, dict[str, bool]] = {
    "accounts": {"account_id": True, "balance": True, "opening_balance": False, "updated_at": False,
                 "allow_negative": False},
    "transactions": {
        "txn_id": True, "account_id": False, "debit_account": False, "credit_account": False,
        "amount": True, "status": False, "posted": False, "sequence": False, "primary": False,
        "balance_before": False, "balance_after": False, "device_id": False,
        "created_at": True, "updated_at": False,
    },
    "scans": {"scan_id": True, "account_id": True, "device_id": False, "scanned_at": True},
}
REQUIRED_SOURCES = ("accounts", "transactions")  # scans is optional: without it duplicate_scan is off
DEFAULT_RELATIONS = {"accounts": "ledger.accounts", "transactions": "ledger.transactions", "scans": "ledger.scans"}
# the type each logical column takes in the source views (sql/010_sources.sql.j2 casts to it)
TYPES = {"account_id": "text", "balance": "numeric", "opening_balance": "numeric", "updated_at": "timestamptz",
         "allow_negative": "boolean", "txn_id": "text", "debit_account": "text", "credit_account": "text",
         "amount": "numeric", "status": "text", "posted": "boolean", "sequence": "numeric", "primary": "boolean",
         "balance_before": "numeric", "balance_after": "numeric", "device_id": "text",
         "created_at": "timestamptz", "scan_id": "text", "scanned_at": "timestamptz"}
MONEY = ("balance", "opening_balance", "amount", "balance_before", "balance_after")
TIMES = ("updated_at", "created_at", "scanned_at")
# the status vocabulary the detectors read; `ignored`: neither a success, a failure nor pending
# (a cancellation that never moved money)
STATUSES = ("success", "failed", "pending", "ignored")
SOURCE_KEYS = ("relation", "where", "columns")
ANSWER_KEYS = ("relation", "key", "order_by", "status", "at", "where")
TOP_KEYS = ("sources", "amount_scale", "detectors")
VALUE_KEYS = ("column", "sql", "time_zone", "map")  # a column value in table form
PROBE_ROWS = 1000  # rows each column's cast is tried on at install
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
ZONE = re.compile(r"^[A-Za-z0-9_+\-/:]{1,64}$")


def documented_keys() -> list[str]:
    """Every key a mapping file may hold, as docs/mapping.md names them."""
    keys = [*TOP_KEYS, "detectors.<name>.enabled", "detectors.<name>.<parameter>"]
    for rel, cols in COLUMNS.items():
        keys += [f"sources.{rel}"] + [f"sources.{rel}.{k}" for k in SOURCE_KEYS]
        keys += [f"sources.{rel}.columns.{c}" for c in cols]
    keys += [f"sources.transactions.answers.{k}" for k in ANSWER_KEYS] + ["sources.transactions.answers"]
    keys += list(VALUE_KEYS)  # the forms of a column's value
    return keys


def ledger_mapping() -> dict:
    """The mapping onto the reference ledger (`install --with-ledger`)."""
    cols = {"accounts": ("account_id", "balance", "opening_balance", "updated_at"),
            "transactions": ("txn_id", "account_id", "amount", "status", "balance_before", "balance_after",
                             "device_id", "created_at", "updated_at"),
            "scans": ("scan_id", "account_id", "device_id", "scanned_at")}
    return {"sources": {
        rel: {"relation": DEFAULT_RELATIONS[rel], "columns": {col: col for col in names}}
        for rel, names in cols.items()
    }}


def load(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist")
    except IsADirectoryError:
        raise UsageError(f"config file {path} is a directory, not a TOML file")
    except OSError as exc:  # unreadable (permissions), not a regular path, ...
        raise UsageError(f"config file {path} cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: it is not UTF-8 text "
                         f"(byte {exc.object[exc.start]:#04x} at offset {exc.start})")
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}")
    check_shape(data)
    return data


def _expected(options) -> str:
    return ", ".join(f"'{o}'" for o in options)


def _check_name(key: str, value, what: str = "a plain column name") -> None:
    if not isinstance(value, str) or not IDENT.match(value):
        raise UsageError(f"config: '{key}' = {value!r} is not {what}")


def _check_relation(key: str, relation) -> None:
    if not isinstance(relation, str):
        raise UsageError(f"config: '{key}' is missing (a schema-qualified table or view)")
    parts = relation.split(".")
    if len(parts) > 2 or not all(IDENT.match(p) for p in parts):
        raise UsageError(f"config: '{key}' = {relation!r} is not a plain (optionally schema-qualified) name")


def _check_sql(key: str, value) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"config: '{key}' must be a non-empty SQL expression")


def _check_value(key: str, col: str, value) -> None:
    """One column's value: a column name, or a table with `column` or `sql`, and `time_zone` (time
    columns) or `map` (status)."""
    if isinstance(value, str):
        if not IDENT.match(value):
            raise UsageError(f"config: '{key}' = {value!r} is not a plain column name "
                             "(use { sql = \"...\" } for an expression)")
        return
    if not isinstance(value, dict):
        raise UsageError(f"config: '{key}' must be a column name or a table such as {{ sql = \"...\" }}")
    allowed = [k for k in VALUE_KEYS if k in ("column", "sql") or (k == "time_zone" and (col in TIMES or col == "at"))
               or (k == "map" and col == "status")]
    for k in value:
        if k not in allowed:
            raise UsageError(f"config: unknown key '{key}.{k}' (expected {_expected(allowed)})")
    if ("column" in value) == ("sql" in value):
        raise UsageError(f"config: '{key}' needs exactly one of 'column' or 'sql'")
    if "column" in value:
        _check_name(f"{key}.column", value["column"])
    else:
        _check_sql(f"{key}.sql", value["sql"])
    if "time_zone" in value and not (isinstance(value["time_zone"], str) and ZONE.match(value["time_zone"])):
        raise UsageError(f"config: '{key}.time_zone' = {value['time_zone']!r} is not a time zone name "
                         "such as 'UTC' or 'Europe/Paris'")
    if "map" in value:
        words = value["map"]
        if not isinstance(words, dict) or not words:
            raise UsageError(f"config: '{key}.map' must be a table of the ledger's words, such as "
                             "{ APPLIED = \"success\", REJECTED = \"failed\" }")
        for word, meaning in words.items():
            if meaning not in STATUSES:
                raise UsageError(f"config: '{key}.map.{word}' = {meaning!r} must be one of {_expected(STATUSES)}")


def check_shape(data: dict) -> None:
    """Refuse unknown keys and malformed values (no database needed)."""
    for key in data:
        if key not in TOP_KEYS:
            raise UsageError(f"config: unknown key '{key}' (expected {_expected(TOP_KEYS)})")
    scale = data.get("amount_scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale > 10 ** 18 \
            or str(scale).rstrip("0") != "1":
        raise UsageError(f"config: 'amount_scale' = {scale!r} must be 1, 10, 100, ... (a power of ten up to "
                         "10^18): the ledger's amounts are in units of 1/amount_scale")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise UsageError("config: 'sources' must be a table")
    for rel, spec in sources.items():
        _check_source(rel, spec)
    if data.get("sources") is not None:
        for rel in REQUIRED_SOURCES:
            if rel not in sources:
                raise UsageError(f"config: 'sources.{rel}' is missing")
    detectors = data.get("detectors", {})
    if not isinstance(detectors, dict) or not all(isinstance(v, dict) for v in detectors.values()):
        raise UsageError("config: 'detectors' must hold one table per detector, e.g. [detectors.duplicate_scan]")
    for name, params in detectors.items():
        if "enabled" in params and not isinstance(params["enabled"], bool):
            raise UsageError(f"config: 'detectors.{name}.enabled' must be true or false")


def _check_source(rel: str, spec) -> None:
    where = f"sources.{rel}"
    if rel not in COLUMNS:
        raise UsageError(f"config: unknown key '{where}' (expected one of {', '.join(COLUMNS)})")
    if not isinstance(spec, dict):
        raise UsageError(f"config: '{where}' must be a table")
    allowed = SOURCE_KEYS + (("answers",) if rel == "transactions" else ())
    for key in spec:
        if key not in allowed:
            raise UsageError(f"config: unknown key '{where}.{key}' (expected {_expected(allowed)})")
    _check_relation(f"{where}.relation", spec.get("relation"))
    if "where" in spec:
        _check_sql(f"{where}.where", spec["where"])
    columns = spec.get("columns", {})
    if not isinstance(columns, dict):
        raise UsageError(f"config: '{where}.columns' must be a table")
    for col, value in columns.items():
        ckey = f"{where}.columns.{col}"
        if col not in COLUMNS[rel]:
            raise UsageError(f"config: unknown key '{ckey}' (expected one of {', '.join(COLUMNS[rel])})")
        _check_value(ckey, col, value)
        if col not in TIMES and isinstance(value, dict) and "time_zone" in value:
            raise UsageError(f"config: '{ckey}.time_zone': only time columns take a time zone")
    for col, required in COLUMNS[rel].items():
        if required and col not in columns:
            raise UsageError(f"config: '{where}.columns.{col}' is missing (required)")
    if rel == "transactions":
        legs = [c for c in ("debit_account", "credit_account") if c in columns]
        if "account_id" in columns and legs:
            raise UsageError(f"config: '{where}.columns.{legs[0]}': map either account_id (one signed row per "
                             "account) or debit_account and credit_account (one transfer, two legs), not both")
        if len(legs) == 1:
            other = ({"debit_account", "credit_account"} - set(legs)).pop()
            raise UsageError(f"config: '{where}.columns.{other}' is missing (a transfer has both a "
                             "debit_account and a credit_account)")
        if not legs and "account_id" not in columns:
            raise UsageError(f"config: '{where}.columns.account_id' is missing (or map debit_account and "
                             "credit_account for transfers)")
        if legs and "primary" in columns:
            raise UsageError(f"config: '{where}.columns.primary': a transfer's debit leg is its primary row already")
        if legs and ("balance_before" in columns or "balance_after" in columns):
            raise UsageError(f"config: '{where}.columns.balance_before': a transfer has two accounts, so one "
                             "pair of balances cannot describe it (map them on an entry-per-account source)")
        if ("balance_before" in columns) != ("balance_after" in columns):
            raise UsageError(f"config: '{where}.columns': balance_before and balance_after go together")
        if "answers" in spec:
            _check_answers(f"{where}.answers", spec["answers"])


def _check_answers(where: str, spec) -> None:
    if not isinstance(spec, dict):
        raise UsageError(f"config: '{where}' must be a table")
    for key in spec:
        if key not in ANSWER_KEYS:
            raise UsageError(f"config: unknown key '{where}.{key}' (expected {_expected(ANSWER_KEYS)})")
    _check_relation(f"{where}.relation", spec.get("relation"))
    for key in ("key", "order_by"):
        if key not in spec:
            raise UsageError(f"config: '{where}.{key}' is missing")
        _check_name(f"{where}.{key}", spec[key])
    if "status" not in spec:
        raise UsageError(f"config: '{where}.status' is missing (the answer rows' status)")
    _check_value(f"{where}.status", "status", spec["status"])
    if "at" in spec:
        _check_value(f"{where}.at", "at", spec["at"])
    if "where" in spec:
        _check_sql(f"{where}.where", spec["where"])


# ---------------------------------------------------------------- database checks


def find_relation(conn, relation: str) -> tuple[int, str, bool, str] | None:
    """The relation a mapping names: (oid, its schema-qualified quoted name, whether it stores rows, its
    relkind).

    Read from the catalogs, which need no privilege on the relation's schema (doctor runs as
    monitor_reader). A plain name is looked up in the connecting role's own search_path, as it was
    before monitorctl pinned the session's (db.connect)."""
    parts = relation.split(".")
    schemas = parts[:-1] or user_schemas(conn)
    return conn.execute(query("find_relation"), {"schemas": schemas, "name": parts[-1]}).fetchone()


def user_schemas(conn) -> list[str]:
    """The schemas a plain name is looked up in: those db.connect kept, or (a connection made elsewhere)
    the session's own."""
    schemas = getattr(conn, "user_schemas", None)
    if schemas is None:
        schemas = conn.execute(query("current_schemas")).fetchone()[0]
    return schemas


def _relation(conn, key: str, relation: str) -> tuple:
    found = find_relation(conn, relation)
    if found is None:
        raise UsageError(f"config: '{key}' = {relation!r}: relation does not exist")
    untrusted = conn.execute(query("relation_untrusted"), (found[0],)).fetchone()
    if untrusted:
        raise UsageError(f"config: '{key}' = {relation!r}: {untrusted[0]}")
    return found


def _probe(conn, key: str, statement) -> list:
    """Run one statement in a transaction that is always rolled back, as one statement of the
    extended protocol (which refuses a second one): a refused mapping changes nothing, whatever its
    expressions hold. A failure is reported under the mapping key."""
    try:
        with conn.transaction(force_rollback=True):
            return conn.execute(statement, binary=True).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:  # the role, not the mapping: exit 1
        raise MonitorError(f"config: '{key}': {' '.join(str(exc).split())}")
    except Exception as exc:  # psycopg.Error: report the key, not a traceback
        message = " ".join(str(exc).split())
        raise UsageError(f"config: '{key}': {message}")


def check_database(conn, mapping: dict) -> list[str]:
    """Every relation and named column exists, every sql expression evaluates and takes its type on
    real rows, and every status word present is in the vocabulary. Returns warnings (one line each)."""
    warnings = []
    for rel, spec in mapping["sources"].items():
        where = f"sources.{rel}"
        found = _relation(conn, f"{where}.relation", spec["relation"])
        have = dict(conn.execute(query("relation_columns"), (found[0],)).fetchall())
        answers = spec.get("answers")
        ans_found = ans_have = None
        if answers:
            ans_found = _relation(conn, f"{where}.answers.relation", answers["relation"])
            ans_have = dict(conn.execute(query("relation_columns"), (ans_found[0],)).fetchall())
            for key in ("key", "order_by"):
                if answers[key] not in ans_have:
                    raise UsageError(f"config: '{where}.answers.{key}' = {answers[key]!r}: no such column in "
                                     f"{answers['relation']}")
            for key in ("status", "at"):
                name = column_name(answers.get(key))
                if name and name not in ans_have:
                    raise UsageError(f"config: '{where}.answers.{key}' = {name!r}: no such column in "
                                     f"{answers['relation']}")
        for col, value in spec["columns"].items():
            name = column_name(value)
            if name and name not in have:
                raise UsageError(f"config: '{where}.columns.{col}' = {name!r}: no such column in {spec['relation']}")
            if col in TIMES and name:
                warnings += _check_zone(f"{where}.columns.{col}", name, have[name], value)
        if answers and column_name(answers.get("at")):
            warnings += _check_zone(f"{where}.answers.at", column_name(answers["at"]),
                                    ans_have[column_name(answers["at"])], answers["at"])
        if answers and "at" not in answers:
            warnings.append(f"'{where}.answers' has no 'at': an answer that comes more than late_window (5 minutes) "
                            "after its transaction is missed by failed_debit and consecutive_failures, and "
                            "balance_mismatch may report its account until its next full pass; map `at` to follow "
                            "late answers (docs/mapping.md, \"State in appended rows\")")
        ctx = render_relation(conn, rel, spec, mapping)
        sample = sql.SQL("(select * from {} as s where {} limit {}) s").format(
            sql.SQL(ctx["relation"]), sql.SQL(ctx["where"]), sql.Literal(PROBE_ROWS))
        if "where" in spec:
            _probe(conn, f"{where}.where", sql.SQL("select count(*) from {}").format(sample))
        # each expression must evaluate against the relation and take the view's type, on some of its
        # rows too: `amount = "transaction_id"` is refused here, naming the key, rather than failing
        # every run with "invalid input syntax for type numeric"
        for col, value in spec["columns"].items():
            expr = _cast(value, "s", col)
            _probe(conn, f"{where}.columns.{col}", sql.SQL("select count({}) from {}").format(sql.SQL(expr), sample))
        if answers:
            asample = sql.SQL("(select * from {} as a where {} limit {}) a").format(
                sql.SQL(ans_found[1]), sql.SQL(f"({answers['where']})" if "where" in answers else "true"),
                sql.Literal(PROBE_ROWS))
            for key in ("status", "at"):
                if key in answers:
                    expr = _cast(answers[key], "a", "status" if key == "status" else "created_at")
                    _probe(conn, f"{where}.answers.{key}",
                           sql.SQL("select count({}) from {}").format(sql.SQL(expr), asample))
            _probe(conn, f"{where}.answers.key", sql.SQL(
                "select count(*) from {} join {} on {} = a.{} ").format(
                    sample, asample, sql.SQL(_raw(spec["columns"]["txn_id"], "s")),
                    sql.Identifier(answers["key"])))
        if rel == "transactions":
            check_vocabulary(conn, spec, ctx)
    return warnings


def check_vocabulary(conn, spec: dict, ctx: dict) -> None:
    """Refuse a status whose words, as present in the rows, are neither mapped nor monitorctl's own:
    they would count as neither success nor failure, silently (docs/mapping.md, "Statuses")."""
    forms = [("sources.transactions.columns.status", spec["columns"].get("status"), ctx["relation"], "s",
              ctx["where"])]
    answers = spec.get("answers")
    if answers:
        found = find_relation(conn, answers["relation"])
        forms.append(("sources.transactions.answers.status", answers["status"], found[1], "a",
                      f"({answers['where']})" if "where" in answers else "true"))
    for key, value, relation, alias, where in forms:
        if value is None:
            continue
        known = set(STATUSES) | set((value.get("map") or {}) if isinstance(value, dict) else {})
        statement = sql.SQL("select distinct ({})::text from {} as {} where {} and ({})::text <> all({}) "
                            "order by 1 limit 6").format(
            sql.SQL(_raw(value, alias)), sql.SQL(relation), sql.Identifier(alias), sql.SQL(where),
            sql.SQL(_raw(value, alias)), sql.Literal(sorted(known)))
        words = [r[0] for r in _probe(conn, key, statement) if r[0] is not None]
        if words:
            shown = ", ".join(repr(w) for w in words[:5]) + (", ..." if len(words) > 5 else "")
            source = (f"column = \"{value}\"" if isinstance(value, str) else
                      f"column = \"{value['column']}\"" if "column" in value else "sql = \"...\"")
            raise UsageError(
                f"config: '{key}': the rows hold status words monitorctl does not know ({shown}; words are "
                f"compared exactly, case too): map each to what it means, one of {', '.join(STATUSES)}: "
                f"status = {{ {source}, map = {{ {words[0]} = \"...\" }} }} (docs/mapping.md, \"Statuses\")")


ZONELESS = re.compile(r"^timestamp(\(\d+\))? without time zone$")


def _check_zone(key: str, name: str, type_: str, value) -> list[str]:
    """A clock-time column read in a named zone must hold clock times (timestamp without time zone):
    refused on any other type (AT TIME ZONE would shift a timestamptz); a warning without a zone."""
    zoneless = bool(ZONELESS.match(type_))
    if _zone(value) and not zoneless:
        raise UsageError(f"config: '{key}.time_zone': {name!r} is a {type_}, not a timestamp without time zone: "
                         "it already says which instant it is, so leave time_zone out")
    if zoneless and not _zone(value):
        return [f"'{key}' = {name!r} is a {type_}: it is read in the server's time zone; say which it holds "
                f"with {{ column = \"{name}\", time_zone = \"UTC\" }} (docs/mapping.md)"]
    return []


def reads_other_rows(value) -> bool:
    """Whether an `sql` value reads rows of its own (a subquery), as far as its text shows."""
    return isinstance(value, dict) and "sql" in value and bool(re.search(r"\bselect\b", value["sql"], re.I))


def column_name(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("column")
    return None


def _zone(value) -> str | None:
    return value.get("time_zone") if isinstance(value, dict) else None


def _raw(value, alias: str) -> str:
    """A value's SQL over the row alias, before any time zone or status map."""
    name = column_name(value)
    if name is not None:
        ident = sql.Identifier(name).as_string(None)
        return f"{alias}.{ident}" if alias else ident
    return f"({value['sql']})"


def expression(value, alias: str) -> str:
    """A value's SQL over the row alias: the column or expression, read in its time zone."""
    raw = _raw(value, alias)
    zone = _zone(value)
    if zone:
        return f"({raw} AT TIME ZONE {sql.Literal(zone).as_string(None)})"
    return raw


def status_expression(value, alias: str) -> str:
    """The status word, mapped onto monitorctl's vocabulary (words the map does not name pass as they are)."""
    words = value.get("map") if isinstance(value, dict) else None
    if not words:
        return _raw(value, alias)
    raw = f"({_raw(value, alias)})::text"
    cases = " ".join(f"WHEN {sql.Literal(k).as_string(None)} THEN {sql.Literal(v).as_string(None)}"
                     for k, v in sorted(words.items()))  # one order, as read or as stored (jsonb)
    return f"(CASE {raw} {cases} ELSE {raw} END)"


def _cast(value, alias: str, col: str) -> str:
    if col == "status":
        return f"({status_expression(value, alias)})::text"
    return f"({expression(value, alias)})::{TYPES[col]}"


def money_factor(mapping: dict) -> str:
    """What the ledger's amounts are multiplied by: 0.01 for amounts in cents (amount_scale = 100)."""
    scale = int((mapping or {}).get("amount_scale", 1))
    return "1" if scale == 1 else str(Decimal(1).scaleb(-(len(str(scale)) - 1)))


def rows_elsewhere(conn, oid: int) -> bool:
    """A Citus distributed or reference table: its rows are stored on other servers, and a row's xmin
    there is another server's transaction id, meaningless to the runner's late-window skip, which is
    therefore off for it (docs/scaling.md)."""
    found = citus.table(conn, oid)
    return bool(found and found.rows_elsewhere)


def render_relation(conn, rel: str, spec: dict | None, mapping: dict | None = None) -> dict:
    """The template context of one logical relation (sql/010_sources.sql.j2): SQL over the row alias s."""
    if spec is None:  # an optional source that is not mapped
        return {"mapped": False, "relation_text": "(not mapped)"}
    found = find_relation(conn, spec["relation"])
    if found is None:
        raise UsageError(f"config: 'sources.{rel}.relation' = {spec['relation']!r}: relation does not exist")
    relation, stores_rows = found[1], found[2] and not rows_elsewhere(conn, found[0])
    cols = spec["columns"]
    factor = money_factor(mapping)
    out = {"mapped": True, "relation": relation, "relation_text": spec["relation"],
           "where": f"({spec['where']})" if spec.get("where") else "true"}
    for col in COLUMNS[rel]:
        value = cols.get(col)
        if value is None:
            out[col] = "NULL"
        elif col == "status":
            out[col] = status_expression(value, "s")
        elif col in MONEY and factor != "1":
            out[col] = f"({expression(value, 's')})::numeric * {factor}"
        else:
            out[col] = expression(value, "s")
    # the inserting (or last updating) transaction of a row, when the relation stores rows here (a
    # table, partitioned table or materialized view; not a view or a foreign table): built-in
    # detectors skip late-window rows their previous run already saw. Not when a value that changes
    # (a status, a time, a balance) is read from other rows through a subquery: the row's own xmin
    # does not move when they change
    changing = [cols.get(c) for c in ("status", "updated_at", "balance", "posted")]
    out["row_xmin"] = "s.xmin" if stores_rows and not any(reads_other_rows(v) for v in changing) else "NULL"
    if rel == "transactions":
        out.update(_transaction_shape(conn, spec, out))
    return out


def _transaction_shape(conn, spec: dict, out: dict) -> dict:
    """Legs, the effective status and what the view joins: a single-entry row is one leg of its own
    account (a debit when its amount is negative); a transfer is a debit leg of debit_account (amount
    negated) and a credit leg of credit_account; the status of a row answered by appended rows is its
    latest answer's."""
    cols = spec["columns"]
    extra: dict = {"answers": None}
    if "debit_account" in cols:
        extra["legs"] = [
            {"account_id": out["debit_account"], "amount": f"-({out['amount']})", "leg": "'debit'",
             "is_debit": "true", "is_primary": "true"},
            {"account_id": out["credit_account"], "amount": out["amount"], "leg": "'credit'",
             "is_debit": "false", "is_primary": "false"}]
    else:
        primary = f"coalesce(({out['primary']})::boolean, false)" if "primary" in cols else "true"
        extra["legs"] = [{"account_id": out["account_id"], "amount": out["amount"], "leg": "NULL",
                          "is_debit": f"({out['amount']}) < 0", "is_primary": primary}]
    answers = spec.get("answers")
    own = out["status"] if "status" in cols else None
    if answers:  # the template joins each row to its latest answer (`ans`), over the answer alias a
        found = find_relation(conn, answers["relation"])
        extra["answers"] = {
            "relation": found[1], "status": status_expression(answers["status"], "a"),
            "at": expression(answers["at"], "a") if "at" in answers else "NULL",
            "row_xmin": "a.xmin" if found[2] and not rows_elsewhere(conn, found[0]) else "NULL",
            "key": sql.Identifier(answers["key"]).as_string(None), "txn_id": _raw(cols["txn_id"], "s"),
            "where": f"({answers['where']})" if "where" in answers else "true",
            "order_by": sql.Identifier(answers["order_by"]).as_string(None)}
        extra["status"] = f"coalesce(ans.status, ({own or 'NULL'})::text, 'pending')"
        if "at" in answers and "updated_at" not in cols:
            extra["updated_at"] = f"coalesce(ans.at, {out['created_at']})"
        # a new answer makes its transaction new: its xmin, when both relations store rows here
        extra["row_xmin"] = (f"coalesce(ans.row_xmin, {out['row_xmin']})"
                             if out["row_xmin"] != "NULL" and extra["answers"]["row_xmin"] != "NULL" else "NULL")
    elif own is None:
        extra["status"] = "'success'"  # a ledger without statuses records only what happened
    return extra


def template_context(conn, mapping: dict) -> dict:
    ctx = {rel: render_relation(conn, rel, mapping["sources"].get(rel), mapping) for rel in COLUMNS}
    return ctx


def has_column(mapping: dict, rel: str, col: str) -> bool:
    spec = mapping["sources"].get(rel)
    return spec is not None and spec["columns"].get(col) is not None


def has_status(mapping: dict) -> bool:
    spec = mapping["sources"]["transactions"]
    return "status" in spec["columns"] or "answers" in spec


def unavailable(mapping: dict) -> dict[str, str]:
    """Built-in detectors the mapping gives nothing to read, and why (install turns them off)."""
    out = {}
    if "scans" not in mapping["sources"]:
        out["duplicate_scan"] = "the mapping has no scans source"
    if not has_status(mapping):
        why = "the mapping gives transactions no status (every row counts as a success)"
        for name in ("failed_debit", "consecutive_failures", "stuck_pending", "failure_rate"):
            out[name] = why
    if not has_column(mapping, "transactions", "balance_before"):
        out["balance_chain"] = "the mapping gives transactions no balance_before and balance_after"
    return out


def stored_form(mapping: dict) -> dict:
    """What install stores of a mapping: its sources and units (not detector parameters)."""
    out = {"sources": mapping["sources"]}
    if int(mapping.get("amount_scale", 1)) != 1:
        out["amount_scale"] = int(mapping["amount_scale"])
    return out
