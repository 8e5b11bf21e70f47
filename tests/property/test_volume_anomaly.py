"""volume_anomaly on synthetic stationary traffic (docs/detectors.md).

"On a synthetic 28-day ledger of stationary Poisson hourly counts it opens fewer than one event per
simulated week, and it fires on an hour whose count dropped by 80%."

Hourly counts are Poisson with a mean that depends only on the hour of the week (a daily curve
between 60 and 200), drawn with a fixed seed, for whole weeks ending at the last complete UTC hour,
and written one transaction row per count. The detector's test (monitor.volume_anomaly_at) is then
evaluated for every hour that has at least min_samples baseline samples, as an hourly run would
see it; a condition stays one event while it holds, so the events are the maximal runs of
consecutive anomalous hours. Every verdict is also checked against tests/property/oracle.py.
"""

from __future__ import annotations

import math
import numpy as np
import pytest

from tests.property import oracle

HOURS_PER_WEEK = 168


def hourly_means() -> np.ndarray:
    """Mean count for each hour of the week: a daily curve from 60 at 03:00 to 200 at 15:00."""
    hour_of_day = np.arange(HOURS_PER_WEEK) % 24
    return 130 - 70 * np.cos(2 * math.pi * (hour_of_day - 3) / 24)


def load(conn, counts: np.ndarray):
    """One row per count; the last count is the last complete UTC hour. Returns that hour."""
    last = conn.execute("select date_trunc('hour', now() at time zone 'UTC') - interval '1 hour'").fetchone()[0]
    conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
    conn.execute("insert into ledger.accounts (account_id) values ('V')")
    conn.execute("""
        insert into ledger.transactions (txn_id, account_id, amount, status, created_at)
        select 'v-' || h.i || '-' || g, 'V', -1, 'success',
               (%(last)s::timestamp - make_interval(hours => (%(n)s - h.i)::integer)
                + make_interval(secs => 3600.0 * g / (h.c + 1))) at time zone 'UTC'
          from unnest(%(counts)s::integer[]) with ordinality as h(c, i)
          cross join lateral generate_series(1, h.c) g""",
        {"last": last, "n": len(counts), "counts": [int(c) for c in counts]})
    conn.execute("select monitor.refresh_volume_baseline()")
    return last


def verdicts(conn, last, hours: list[int], n: int) -> list[bool]:
    """volume_anomaly_at for the hours with these indexes (0 = the first loaded hour)."""
    rows = conn.execute("""
        select exists (select from monitor.volume_anomaly_at(
                           d.params, %(last)s::timestamp - make_interval(hours => %(n)s::integer - 1 - i)))
          from monitor.detectors d, unnest(%(hours)s::integer[]) with ordinality as u(i, o)
         where d.name = 'volume_anomaly' order by o""", {"last": last, "n": n, "hours": hours}).fetchall()
    return [r[0] for r in rows]


def events(anomalous: list[bool]) -> int:
    """Maximal runs of consecutive anomalous hours."""
    return sum(1 for i, a in enumerate(anomalous) if a and (i == 0 or not anomalous[i - 1]))


def samples_of(counts, i, baseline_weeks=4):
    """Counts of the same hour of the week 1..baseline_weeks weeks before hour i, where loaded."""
    return [int(counts[i - HOURS_PER_WEEK * k]) for k in range(1, baseline_weeks + 1)
            if i - HOURS_PER_WEEK * k >= 0]


def simulate(conn, weeks: int, seed: int):
    """Load `weeks` weeks of traffic; (counts, last hour, evaluated hour indexes, DB verdicts)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.tile(hourly_means(), weeks))
    last = load(conn, counts)
    evaluated = [i for i in range(len(counts)) if len(samples_of(counts, i)) >= 2]
    got = verdicts(conn, last, evaluated, len(counts))
    want = [oracle.volume_anomalous(samples_of(counts, i), int(counts[i])) for i in evaluated]
    assert got == want, [(i, counts[i], samples_of(counts, i)) for i, g, w in zip(evaluated, got, want) if g != w]
    return counts, last, evaluated, got


SEED = 1


def test_verdicts_follow_the_documented_formula_and_an_80_percent_drop_fires(conn):
    with conn.transaction():  # one now(): the last complete hour does not move under the test
        counts, last, evaluated, got = simulate(conn, weeks=8, seed=SEED)  # asserts DB == formula
        assert len(evaluated) == 6 * HOURS_PER_WEEK and sum(got) > 0
        assert not got[-1], "the seed should leave the last hour quiet before the drop"
        kept = round(int(counts[-1]) * 0.2)
        conn.execute("delete from ledger.transactions where txn_id like %s and split_part(txn_id, '-', 3)::int > %s",
                     (f"v-{len(counts)}-%", kept))
        assert conn.execute("select monitor.run_detector('volume_anomaly')").fetchone()[0] == 1
        [(observed, mean, hour)] = conn.execute(
            "select (evidence->>'observed')::int, (evidence->>'baseline_mean')::numeric, evidence->>'hour_utc'"
            " from monitor.events where detector = 'volume_anomaly' and status = 'open'").fetchall()
        assert observed == kept and hour == last.isoformat()
        assert oracle.volume_anomalous(samples_of(counts, len(counts) - 1), kept)


# The band without its factor, 3 * max(sd, sqrt(mean), 1), fires on 0.5-1.1% of stationary Poisson
# hours (0.91-1.86 events per week for 4-2 baseline samples) because it ignores how uncertain a mean
# of 2-4 samples is; with the prediction-interval factor sqrt(1 + 1/n) (docs/detectors.md) it opens about
# 0.4 events per week. "Events per simulated week" is a rate: it is measured over many simulated
# ledgers, not read off one seed (one seed's two to four weeks hold only a handful of events).
# The database's verdicts equal the model's hour by hour (the test above checks 1,008 hours of a
# ledger loaded into PostgreSQL), so the rate is counted with the model over 30 seeded ledgers.
RATE_SEEDS = range(1, 31)


@pytest.mark.parametrize("weeks, judged_weeks", [
    pytest.param(4, 2, id="28-day ledger: every hour with min_samples baseline samples"),
    pytest.param(8, 4, id="steady state: the 4 weeks after 28 days of baseline"),
])
def test_quiet_on_stationary_traffic(conn, weeks, judged_weeks, record_property):
    with conn.transaction(force_rollback=True):  # the database agrees with the model on this ledger
        simulate(conn, weeks=weeks, seed=SEED)
    opened = 0
    for seed in RATE_SEEDS:
        counts = np.random.default_rng(seed).poisson(np.tile(hourly_means(), weeks))
        judged = [oracle.volume_anomalous(samples_of(counts, i), int(counts[i]))
                  for i in range((weeks - judged_weeks) * HOURS_PER_WEEK, len(counts))]
        opened += events(judged)
    rate = opened / (judged_weeks * len(RATE_SEEDS))
    record_property("volume_anomaly_events_per_week", rate)
    assert rate < 1, f"{opened} events in {judged_weeks * len(RATE_SEEDS)} simulated weeks"
