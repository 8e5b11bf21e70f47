"""monitorctl ack / resolve in-process: all-or-nothing over the ids (docs/cli.md)."""

import pytest

from tests.acceptance.support import Monitor


@pytest.fixture
def monitor(db, conn):
    return Monitor(db, conn, in_process=True)


def test_all_or_nothing_over_the_ids(monitor):
    monitor.detector("crit")
    for key in ("a", "b", "c"):
        monitor.find("crit", key)
    monitor.run("crit")
    a, b, c = (monitor.event(k)["event_id"] for k in "abc")
    r = monitor.cli("resolve", str(a), "999999")  # an unknown id: nothing changes, exit 1
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "999999" in r.stderr
    assert monitor.event("a")["status"] == "open"
    monitor.ok("resolve", str(b))
    r = monitor.cli("ack", str(a), str(b))  # b is resolved: a stays open
    assert r.returncode == 1 and f"event {b} is already resolved" in r.stderr
    assert monitor.event("a")["status"] == "open"
    r = monitor.cli("resolve", str(c), str(b))  # resolving a resolved event: nothing changes
    assert r.returncode == 1 and monitor.event("c")["status"] == "open"
    monitor.ok("ack", str(a), str(c))
    r = monitor.ok("ack", str(a))  # acknowledging an acknowledged event is a no-op
    assert "acknowledged 0 events (1 already acknowledged)" in r.stderr
    assert [t for t, _, _ in monitor.history(a)] == ["opened", "acknowledged"]


@pytest.mark.parametrize("args", [["ack"], ["resolve", "--note", "x"]])
def test_ids_are_required_and_numeric(monitor, args):
    assert monitor.cli(*args).returncode == 2
    assert monitor.cli(*args, "one").returncode == 2
