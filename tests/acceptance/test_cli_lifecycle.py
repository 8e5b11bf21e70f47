"""monitorctl ack / resolve (docs/operations.md, docs/cli.md, docs/security.md) through the installed CLI."""

import psycopg

from tests.acceptance.support import Monitor, dbname, with_user


def test_ack_then_resolve_leaves_opened_acknowledged_resolved(monitor):
    monitor.detector("crit")
    monitor.find("crit", "a")
    monitor.run("crit")
    eid = monitor.event("a")["event_id"]
    r = monitor.cli("ack", str(eid), "999999")  # all or nothing: an unknown id changes nothing
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "999999" in r.stderr
    assert monitor.event("a")["status"] == "open"
    r = monitor.ok("ack", str(eid))
    assert "acknowledged 1 event" in r.stderr and r.stdout == ""
    monitor.ok("resolve", str(eid), "--note", "refunded the card", "--as", "alice")
    assert monitor.history(eid) == [("opened", "auto", None), ("acknowledged", "postgres", None),
                                    ("resolved", "alice", "refunded the card")]
    ev = monitor.event("a")
    assert (ev["status"], ev["acknowledged_by"], ev["resolved_by"], ev["resolution_note"]) == \
        ("resolved", "postgres", "alice", "refunded the card")


def test_an_operator_role_acts_through_the_functions_and_is_recorded(monitor, pg_server):
    """A login in monitor_operator can list, ack and resolve; one in monitor_reader can only look."""
    monitor.detector("crit")
    monitor.find("crit", "a")
    monitor.run("crit")
    eid = str(monitor.event("a")["event_id"])
    suffix = dbname(monitor.dsn)
    oncall, viewer = f"oncall_{suffix}", f"viewer_{suffix}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'create role "{oncall}" login in role monitor_operator')
        admin.execute(f'create role "{viewer}" login in role monitor_reader')
    try:
        op = Monitor(with_user(monitor.dsn, oncall), monitor.conn)
        assert [e["event_id"] for e in op.json("events")] == [int(eid)]
        op.ok("ack", eid)
        op.ok("resolve", eid, "--note", "handled")
        assert monitor.history(int(eid))[1:] == [("acknowledged", oncall, None), ("resolved", oncall, "handled")]
        reader = Monitor(with_user(monitor.dsn, viewer), monitor.conn)
        assert reader.json("events", "--status", "all")[0]["status"] == "resolved"
        assert reader.json("status")["events"]["critical"]["open"] == 0
        r = reader.cli("resolve", eid)
        assert r.returncode == 1 and "permission denied" in r.stderr
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
            for role in (oncall, viewer):
                admin.execute(f'drop owned by "{role}" cascade')
                admin.execute(f'drop role "{role}"')
