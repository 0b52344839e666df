"""ClickHouse through clickhouse-connect: on chDB directly (chdb:// DSN) and through the embedded store's HTTP
endpoint that every other process uses."""

import datetime
import subprocess
import sys

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from vigil.store.client import connect
from vigil.store.migrate import apply_migrations, migrations

pytestmark = pytest.mark.slow  # starts real servers or Flink


def test_chdb_dsn_create_insert_query(tmp_path):
    # chDB allows one data directory per process: run in a child so the test process stays free.
    code = f"""
import clickhouse_connect
c = clickhouse_connect.get_client(dsn="chdb://{tmp_path}/db")
c.command("CREATE TABLE t (camera_id String, n UInt32) ENGINE = MergeTree ORDER BY camera_id")
c.insert("t", [["cam-1", 1], ["cam-1", 2], ["cam-2", 5]], column_names=["camera_id", "n"])
print(c.query("SELECT camera_id, sum(n) FROM t GROUP BY camera_id ORDER BY camera_id").result_rows)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('cam-1', 3), ('cam-2', 5)]"


def test_migrations_applied_once_and_recorded(stack):
    client = connect(stack)
    recorded = [row[0] for row in client.query("SELECT version FROM vigil_migrations ORDER BY version").result_rows]
    assert recorded == [version for version, _, _ in migrations()]
    assert apply_migrations(client) == []  # re-running is harmless
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert {"frames", "detections", "tracks", "camera_status"} <= tables


def test_http_store_insert_query_parameters_and_replacing(stack):
    client = connect(stack)
    now = datetime.datetime.now(datetime.timezone.utc)
    row = ["st-1", "cam-http", now, "ONLINE", 10, 5, 0, 0, 5.0, None]
    cols = ["status_id", "camera_id", "ts", "state", "frames_decoded", "frames_published", "decode_errors",
            "reconnects", "actual_fps", "message"]
    client.insert("camera_status", [row, row], column_names=cols)  # a replayed duplicate
    count = client.query("SELECT count() FROM camera_status FINAL WHERE camera_id = {cam:String}",
                         parameters={"cam": "cam-http"}).result_rows[0][0]
    assert count == 1


def test_http_store_reports_sql_errors(stack):
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE|Unknown table"):
        connect(stack).query("SELECT * FROM no_such_table")
