"""Goals, the figures every run must produce, and the printed table."""

from __future__ import annotations

import math

from .common import ratio

# Every figure a run produces: a path into the JSON result. The CI smoke test checks that each one
# is present and numeric.
FIGURES = [
    "generation.main.seconds",
    "generation.ref.seconds",
    "first_run.main.first.ms",
    "first_run.main.idle.ms",
    "steady_state.main.cycle_ms.min",
    "steady_state.main.cycle_ms.median",
    "steady_state.main.floor_ms.min",
    "steady_state.main.floor_ms.median",
    "steady_state.main.floor_transactions_ms.median",
    "steady_state.main.floor_scans_ms.median",
    "steady_state.main.keyed_read_ms.median",
    "steady_state.ref.cycle_ms.min",
    "steady_state.ref.cycle_ms.median",
    "steady_state.main.sustained.cycle_ms.median",
    "steady_state.main.sustained.floor_window_ms.median",
    "steady_state.cycle_to_floor",
    "steady_state.size_ratio",
    "full_reconciliation.pass_ms.min",
    "full_reconciliation.pass_ms.median",
    "full_reconciliation.floor_ms.min",
    "full_reconciliation.floor_ms.median",
    "full_reconciliation.ratio",
    "naive.total_s",
    "naive.speedup",
    "write_overhead.off.tps_median",
    "write_overhead.on.tps_median",
    "write_overhead.off.p95_ms_median",
    "write_overhead.on.p95_ms_median",
    "write_overhead.tps_ratio",
    "write_overhead.p95_ratio",
    "backfill.total_s",
    "backfill.naive_s",
    "backfill.ratio",
    "storm.fold_ms.median",
    "storm.floor_insert_ms.median",
    "storm.fold_ratio",
    "storm.resight_ms.median",
    "storm.floor_update_ms.median",
    "storm.resight_ratio",
    "notify.latency_ms.p50",
    "notify.latency_ms.p95",
    "notify.throughput.per_second",
    "notify.storm.requests",
    "stream.peak_rss_mb",
    "serve.metrics_ms",
    "serve.overview_ms",
    "serve.floor_ms",
    "mapped.idle.main.ms.median",
    "mapped.idle.ref.ms.median",
    "mapped.idle_size_ratio",
    "mapped.steady.main.cycle_ms.median",
    "mapped.steady.ref.cycle_ms.median",
    "mapped.steady_size_ratio",
    "mapped.keyed_size_ratio",
]
# Figures of a run of their own (--mapped-only: another server setting); a whole run skips them.
SEPARATE = ("mapped.",)


def lookup(result: dict, path: str):
    node = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def missing_figures(result: dict, only: str | tuple[str, ...] | None = None) -> list[str]:
    """Figures a run did not produce; `only`: the prefix of the figures this run measures."""
    out = []
    for path in FIGURES:
        if (only and not path.startswith(only)) or (not only and path.startswith(SEPARATE)):
            continue
        v = lookup(result, path)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            out.append(path)
    return out


def derive(result: dict) -> None:
    """Ratios computed from the measured figures."""
    ss = result.get("steady_state", {})
    main, ref = ss.get("main", {}), ss.get("ref", {})
    ss["cycle_to_floor"] = ratio(lookup(main, "cycle_ms.median"), lookup(main, "floor_ms.median"))
    ss["size_ratio"] = ratio(lookup(main, "cycle_ms.median"), lookup(ref, "cycle_ms.median"))
    full = result.get("full_reconciliation", {})
    full["ratio"] = ratio(lookup(full, "pass_ms.median"), lookup(full, "floor_ms.median"))
    nv = result.get("naive", {})
    total = nv.get("total_s")
    nv["speedup"] = ratio(total * 1000 if total is not None else None, lookup(main, "cycle_ms.median"))
    bf = result.get("backfill", {})
    rules = lookup(result, "naive.rules") or {}
    if bf and all(d in rules for d in bf.get("detectors_s", {})):
        bf["naive_s"] = round(sum(rules[d]["s"] for d in bf["detectors_s"]), 3)
        bf["ratio"] = ratio(bf.get("total_s"), bf["naive_s"])
    mp = result.get("mapped")
    if mp:
        mp["idle_size_ratio"] = ratio(lookup(mp, "idle.main.ms.median"), lookup(mp, "idle.ref.ms.median"))
        mp["steady_size_ratio"] = ratio(lookup(mp, "steady.main.cycle_ms.median"),
                                        lookup(mp, "steady.ref.cycle_ms.median"))
        # the least any per-account check costs: the new transactions with their card read by key
        mp["keyed_size_ratio"] = ratio(lookup(mp, "steady.main.keyed_read_ms.median"),
                                       lookup(mp, "steady.ref.keyed_read_ms.median"))
    st = result.get("storm", {})
    st["fold_ratio"] = ratio(lookup(st, "fold_ms.median"), lookup(st, "floor_insert_ms.median"))
    st["resight_ratio"] = ratio(lookup(st, "resight_ms.median"), lookup(st, "floor_update_ms.median"))


def goals(result: dict) -> list[dict]:
    """Each goal: what was measured against what target, and whether it holds."""
    errors = {}
    for path in ("first_run.main.first.errors", "steady_state.main.errors", "steady_state.ref.errors",
                 "full_reconciliation.errors"):
        errors.update(lookup(result, path) or {})
    out = []

    def goal(name, value, op, target, unit="x"):
        if value is None:
            met = None
        else:
            met = value <= target if op == "<=" else value >= target
        out.append({"goal": name, "measured": value, "target": f"{op} {target}{unit}", "met": met})

    if "mapped" in result:  # a --mapped-only run
        goal("mapped ledger, doctor's indexes: idle cycle, large vs small",
             lookup(result, "mapped.idle_size_ratio"), "<=", 1.5)
        goal("mapped ledger, doctor's indexes: steady cycle, large vs small",
             lookup(result, "mapped.steady_size_ratio"), "<=", 1.5)
        return out
    goal("steady-state cycle vs its floor", lookup(result, "steady_state.cycle_to_floor"), "<=", 5)
    goal("steady-state cycle, large vs small ledger", lookup(result, "steady_state.size_ratio"), "<=", 1.5)
    goal("full reconciliation vs its floor", lookup(result, "full_reconciliation.ratio"), "<=", 2)
    goal("speed-up over the naive baseline", lookup(result, "naive.speedup"), ">=", 100)
    goal("write throughput with detection", lookup(result, "write_overhead.tps_ratio"), ">=", 0.97)
    goal("write p95 latency with detection", lookup(result, "write_overhead.p95_ratio"), "<=", 1.10)
    goal("30-day backfill vs the naive rules over the same data", lookup(result, "backfill.ratio"), "<=", 1.5)
    if lookup(result, "backfill.errors"):
        out[-1]["met"] = False
        out[-1]["note"] = "slices failed: " + ", ".join(sorted(result["backfill"]["errors"]))
    goal("storm: findings folded into events vs a plain INSERT", lookup(result, "storm.fold_ratio"), "<=", 3)
    goal("storm: open conditions seen again vs a plain UPDATE", lookup(result, "storm.resight_ratio"), "<=", 3)
    if lookup(result, "storm.errors"):
        for g in out[-2:]:
            g["met"] = False
            g["note"] = "runs failed: " + "; ".join(f"{k}: {v}" for k, v in result["storm"]["errors"].items())
    goal("notification latency, commit to receiver, p95", lookup(result, "notify.latency_ms.p95"), "<=", 1000,
         " ms")
    goal("notification throughput, one worker", lookup(result, "notify.throughput.per_second"), ">=", 500, "/s")
    goal("notification storm: requests to one receiver", lookup(result, "notify.storm.requests"), "<=", 1, "")
    if lookup(result, "notify.errors"):
        for g in out[-3:]:
            g["met"] = False
            g["note"] = "; ".join(f"{k}: {v}" for k, v in result["notify"]["errors"].items())
    goal(f"events listed in every format, peak memory up to {lookup(result, 'stream.largest') or 0:,} events",
         lookup(result, "stream.peak_rss_mb"), "<=", 100, " MB")
    if lookup(result, "stream.errors"):
        out[-1]["met"] = False
        out[-1]["note"] = "; ".join(f"{k}: {v}" for k, v in result["stream"]["errors"].items())
    goal("server: /metrics scrape, median", lookup(result, "serve.metrics_ms"), "<=", 50, " ms")
    goal("server: overview page, median", lookup(result, "serve.overview_ms"), "<=", 50, " ms")
    gen = lookup(result, "generation.main.seconds")
    goal("ledger generation time", round(gen / 60, 1) if gen is not None else None, "<=", 60, " min")
    if errors:
        for g in out[:4]:
            g["met"] = None
            g["note"] = "not meaningful: detectors failed (" + ", ".join(sorted(errors)) + ")"
    return out


def _fmt_ms(v) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:.1f} ms"


def _fmt_x(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def table(result: dict) -> str:
    """The one table a run prints."""
    sc = result["meta"]["scale"]
    ref = result["meta"].get("ref_scale") or {}
    g = lookup
    rows = [("figure", "min", "median", "reference", "ratio")]
    rows.append((f"steady-state cycle, {sc['transactions']:,} txns (delta {sc['delta_transactions']:,}+"
                 f"{sc['delta_scans']:,})",
                 _fmt_ms(g(result, "steady_state.main.cycle_ms.min")),
                 _fmt_ms(g(result, "steady_state.main.cycle_ms.median")),
                 "floor " + _fmt_ms(g(result, "steady_state.main.floor_ms.median")),
                 _fmt_x(g(result, "steady_state.cycle_to_floor"))))
    rows.append(("  floor: plain pass over new transactions / scans",
                 "", "", _fmt_ms(g(result, "steady_state.main.floor_transactions_ms.median")) + " / "
                 + _fmt_ms(g(result, "steady_state.main.floor_scans_ms.median")), ""))
    rows.append(("  new transactions with their card read by key", "", "",
                 _fmt_ms(g(result, "steady_state.main.keyed_read_ms.median")), ""))
    rows.append((f"  sustained: cycle after {g(result, 'steady_state.main.sustained.minutes')} min at that rate",
                 _fmt_ms(g(result, "steady_state.main.sustained.cycle_ms.min")),
                 _fmt_ms(g(result, "steady_state.main.sustained.cycle_ms.median")),
                 "late window " + _fmt_ms(g(result, "steady_state.main.sustained.floor_window_ms.median")), ""))
    rows.append((f"steady-state cycle, {ref.get('transactions', 0):,} txns (same delta)",
                 _fmt_ms(g(result, "steady_state.ref.cycle_ms.min")),
                 _fmt_ms(g(result, "steady_state.ref.cycle_ms.median")),
                 "large/small", _fmt_x(g(result, "steady_state.size_ratio"))))
    rows.append(("full reconciliation (balance_mismatch full pass)",
                 _fmt_ms(g(result, "full_reconciliation.pass_ms.min")),
                 _fmt_ms(g(result, "full_reconciliation.pass_ms.median")),
                 "group by " + _fmt_ms(g(result, "full_reconciliation.floor_ms.median")),
                 _fmt_x(g(result, "full_reconciliation.ratio"))))
    naive_s = g(result, "naive.total_s")
    rows.append(("naive baseline, all rules once", "",
                 _fmt_ms(naive_s * 1000 if naive_s is not None else None), "speed-up of cycle",
                 _fmt_x(g(result, "naive.speedup"))))
    rows.append(("first run (24 h lookback, full balance pass)", "",
                 _fmt_ms(g(result, "first_run.main.first.ms")), "", ""))
    rows.append(("idle cycle (no new rows)", "", _fmt_ms(g(result, "first_run.main.idle.ms")), "", ""))
    rate = g(result, "write_overhead.rate")
    for arm in ("off", "on"):
        rows.append((f"pgbench payments{f' at {rate}/s' if rate else ''}, detection {arm}: TPS / p95", "",
                     f"{g(result, f'write_overhead.{arm}.tps_median')} tps",
                     f"p95 {g(result, f'write_overhead.{arm}.p95_ms_median')} ms", ""))
    rows.append(("  with/without detection: TPS, p95", "", "", _fmt_x(g(result, "write_overhead.tps_ratio")),
                 _fmt_x(g(result, "write_overhead.p95_ratio"))))
    bf_s = g(result, "backfill.total_s")
    rows.append((f"backfill, {g(result, 'backfill.days')} days in {g(result, 'backfill.slices')} slices "
                 "(finding detectors)", "", _fmt_ms(bf_s * 1000 if bf_s is not None else None),
                 "naive " + _fmt_ms(g(result, "backfill.naive_s") * 1000 if g(result, "backfill.naive_s") is not None
                                    else None), _fmt_x(g(result, "backfill.ratio"))))
    n = g(result, "storm.findings")
    rows.append((f"storm: {n or 0:,} findings folded into events (timeout {g(result, 'storm.timeout')})",
                 _fmt_ms(g(result, "storm.fold_ms.min")), _fmt_ms(g(result, "storm.fold_ms.median")),
                 "INSERT " + _fmt_ms(g(result, "storm.floor_insert_ms.median")), _fmt_x(g(result, "storm.fold_ratio"))))
    rows.append((f"storm: {n or 0:,} open conditions seen again",
                 _fmt_ms(g(result, "storm.resight_ms.min")), _fmt_ms(g(result, "storm.resight_ms.median")),
                 "UPDATE " + _fmt_ms(g(result, "storm.floor_update_ms.median")),
                 _fmt_x(g(result, "storm.resight_ratio"))))
    rows.append(("notifications: commit to receiver, p50 / p95", "", _fmt_ms(g(result, "notify.latency_ms.p50")),
                 "p95 " + _fmt_ms(g(result, "notify.latency_ms.p95")), ""))
    rows.append(("notifications: deliveries a second, one worker", "",
                 f"{g(result, 'notify.throughput.per_second')}/s", "", ""))
    rows.append((f"notifications: a storm of {g(result, 'notify.storm.events') or 0:,} events", "",
                 f"{g(result, 'notify.storm.requests')} request(s)",
                 f"{g(result, 'notify.storm.digests')} digest(s)", ""))
    for run in (g(result, "stream.runs") or {}).values():
        rows.append((f"events --format {run['format']}, {run['events']:,} events: peak memory", "",
                     f"{run['peak_rss_mb']} MB", f"{run['seconds']} s", ""))
    ev = g(result, "serve.events")
    for what, key in (("/metrics scrape", "metrics"), ("overview page", "overview")):
        rows.append((f"server: {what}, {ev or 0:,} events, {g(result, 'serve.active') or 0:,} active", "",
                     _fmt_ms(g(result, f"serve.{key}_ms")), "count " + _fmt_ms(g(result, "serve.floor_ms")),
                     _fmt_x(g(result, f"serve.{key}_ratio"))))
    gen = g(result, "generation.main.seconds")
    rows.append(("ledger generation", "", f"{gen / 60:.1f} min" if gen is not None else "n/a", "", ""))
    return "\n".join(_lines(rows) + [""] + _goal_lines(result))


def _goal_lines(result: dict) -> list[str]:
    lines = []
    for gl in result.get("goals", []):
        mark = {True: "met", False: "MISSED", None: "n/a"}[gl["met"]]
        lines.append(f"  goal {gl['goal']}: {gl['measured']} (target {gl['target']}) {mark}"
                     + (f" - {gl['note']}" if gl.get("note") else ""))
    return lines


def mapped_table(result: dict) -> str:
    """The table of a --mapped-only run."""
    sc, ref = result["meta"]["scale"], result["meta"].get("ref_scale") or {}
    g = lookup
    sb = g(result, "mapped.shared_buffers")
    rows = [("figure (mapped ledger, doctor's indexes, shared_buffers " + str(sb) + ")", "min", "median",
             "reference", "ratio")]
    for what, path, ratio_path in (("idle cycle (no new rows)", "idle.{}.ms", "idle_size_ratio"),
                                   (f"steady-state cycle (delta {sc['delta_transactions']:,}+{sc['delta_scans']:,})",
                                    "steady.{}.cycle_ms", "steady_size_ratio")):
        for key, n in (("main", sc["transactions"]), ("ref", ref.get("transactions", 0))):
            rows.append((f"{what}, {n:,} txns", _fmt_ms(g(result, f"mapped.{path.format(key)}.min")),
                         _fmt_ms(g(result, f"mapped.{path.format(key)}.median")),
                         "large/small" if key == "ref" else "",
                         _fmt_x(g(result, f"mapped.{ratio_path}")) if key == "ref" else ""))
    for key, n in (("main", sc["transactions"]), ("ref", ref.get("transactions", 0))):
        rows.append((f"  new transactions with their card read by key, {n:,} txns", "",
                     _fmt_ms(g(result, f"mapped.steady.{key}.keyed_read_ms.median")),
                     "large/small" if key == "ref" else "",
                     _fmt_x(g(result, "mapped.keyed_size_ratio")) if key == "ref" else ""))
    created = g(result, "mapped.indexes.main.created") or []
    lines = _lines(rows)
    lines.append(f"  doctor's indexes ({len(created)}): " + "; ".join(created))
    for key in ("main", "ref"):
        per = g(result, f"mapped.idle.{key}.per_detector_ms") or {}
        lines.append(f"  idle per detector, {key}: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
        per = g(result, f"mapped.steady.{key}.per_detector_ms") or {}
        lines.append(f"  steady per detector, {key}: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    return "\n".join(lines + [""] + _goal_lines(result))


def _lines(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(widths[j]) if j == 0 else str(c).rjust(widths[j])
                               for j, c in enumerate(r)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
