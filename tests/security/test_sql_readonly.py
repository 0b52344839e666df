"""`vigil sql` and the analyst paths are read-only by default, and the embedded store (chDB 4.4 behind the ClickHouse
HTTP facade) enforces it: with readonly=1 every write, DDL, settings change and file()/url() table function is
refused by the store itself, and the next connection of a writer is unaffected. `--write` is the explicit way to
change data. Values travel as query parameters, never in the SQL text."""

from __future__ import annotations

import subprocess
import sys

import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError

from vigil.config import REPO_ROOT, Settings
from vigil.store.client import connect

REFUSED = [
    "INSERT INTO vigil_migrations (version, name) VALUES (999, 'intruder')",
    "ALTER TABLE vigil_migrations DELETE WHERE 1",
    "TRUNCATE TABLE vigil_migrations",
    "DROP TABLE vigil_migrations",
    "CREATE TABLE intruder (x Int32) ENGINE = Memory",
    "OPTIMIZE TABLE vigil_migrations",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "INSERT INTO FUNCTION file('/tmp/vigil-intruder.csv', 'CSV', 'x Int32') SELECT 1",
    "SELECT 1 SETTINGS readonly = 0",
    "SYSTEM DROP DNS CACHE",
]


def migrations(dsn: str) -> int:
    return connect(Settings(clickhouse_dsn=dsn)).query("SELECT count() FROM vigil_migrations").result_rows[0][0]


@pytest.mark.parametrize("statement", REFUSED)
def test_a_read_only_connection_cannot_write_or_escape(store_dsn, statement):
    before = migrations(store_dsn)
    reader = connect(Settings(clickhouse_dsn=store_dsn), read_only=True)
    with pytest.raises(ClickHouseError, match="READONLY|readonly"):
        reader.query(statement) if statement.startswith("SELECT") else reader.command(statement)
    assert migrations(store_dsn) == before  # and a writer's connection still writes: readonly is per request


def test_a_read_only_connection_reads_with_parameters(store_dsn):
    reader = connect(Settings(clickhouse_dsn=store_dsn), read_only=True)
    hostile = "x' OR 1=1 --"
    rows = reader.query("SELECT count() FROM vigil_migrations WHERE name = {name:String}",
                        parameters={"name": hostile}).result_rows
    assert rows == [(0,)]  # the value is a value, not SQL
    assert reader.query("SELECT count() > 0 FROM vigil_migrations").result_rows == [(1,)]
    writer = connect(Settings(clickhouse_dsn=store_dsn))
    writer.command("CREATE TABLE IF NOT EXISTS scratch (x Int32) ENGINE = Memory")
    writer.command("DROP TABLE scratch")


def vigil_sql(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "sql", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "VIGIL_CLICKHOUSE_DSN": dsn,
                                                       "COLUMNS": "200"})


def test_vigil_sql_is_read_only_unless_asked_to_write(store_dsn):
    refused = vigil_sql(store_dsn, "CREATE TABLE analyst_scratch (x Int32) ENGINE = Memory")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "read-only" in refused.stdout and "--write" in refused.stdout and "Traceback" not in refused.stdout
    done = vigil_sql(store_dsn, "--write", "CREATE TABLE analyst_scratch (x Int32) ENGINE = Memory")
    assert done.returncode == 0, done.stdout + done.stderr
    vigil_sql(store_dsn, "--write", "INSERT INTO analyst_scratch VALUES (7)")
    found = vigil_sql(store_dsn, "SELECT x FROM analyst_scratch WHERE x = {x:Int32}", "--param", "x=7")
    assert found.returncode == 0 and "1 rows" in found.stdout, found.stdout + found.stderr
    assert vigil_sql(store_dsn, "--write", "DROP TABLE analyst_scratch").returncode == 0
