"""The daily pg_cron job runs the same retention as `monitorctl prune`, with monitor.settings."""

from monitorctl import schedule
from tests.acceptance.test_cli_prune import keys, scene


def test_the_pg_cron_jobs_command_prunes_with_the_settings(conn):
    command = schedule.MAINTENANCE["prune"][1]
    assert command == "CALL monitor.prune()"
    scene(conn)
    conn.execute("update monitor.settings set value = '35' where key = 'retention.events_days'")
    conn.execute(command)  # exactly what pg_cron runs, outside a transaction block
    assert keys(conn) == {"resolved_31d", "resolved_29d", "open_40d", "acked_40d", "open_new"}
    conn.execute("update monitor.settings set value = '30' where key = 'retention.events_days'")
    row = conn.execute(command).fetchone()  # the counts come back as the procedure's INOUT columns
    assert row[:4] == (1, 0, 0, 0)
    assert keys(conn) == {"resolved_29d", "open_40d", "acked_40d", "open_new"}
