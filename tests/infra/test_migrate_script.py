"""The ClickHouse migration Job's program (modules/clickhouse/files/migrate.py) turns Vigil's single-node migrations
into replicated DDL: every MergeTree-family engine of every migration becomes its Replicated form, nothing else
changes, and the database is created with the Replicated engine."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.infra.conftest import TF_ROOT
from vigil.store.migrate import migrations, statements


@pytest.fixture(scope="module")
def migrate():
    spec = importlib.util.spec_from_file_location("ch_migrate", TF_ROOT / "modules" / "clickhouse" / "files" / "migrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_of_every_migration_becomes_replicated(migrate):
    tables = 0
    for _, name, sql in migrations():
        for statement in statements(sql):
            out = migrate.replicated(statement)
            engines = re.findall(r"ENGINE\s*=\s*(\w+)", out)
            assert all(e.startswith("Replicated") and e.endswith("MergeTree") for e in engines), f"{name}: {engines}"
            assert re.sub(r"Replicated(\w*MergeTree)", r"\1", out) == statement  # nothing else changed
            tables += len(engines)
    assert tables >= 10


@pytest.mark.parametrize("statement, expected", [
    ("CREATE TABLE t (a UInt8) ENGINE = ReplacingMergeTree(v) ORDER BY a",
     "CREATE TABLE t (a UInt8) ENGINE = ReplicatedReplacingMergeTree(v) ORDER BY a"),
    ("CREATE TABLE m (v UInt32) ENGINE = MergeTree ORDER BY v", "CREATE TABLE m (v UInt32) ENGINE = ReplicatedMergeTree ORDER BY v"),
    ("CREATE TABLE r ENGINE = ReplicatedMergeTree ORDER BY v", "CREATE TABLE r ENGINE = ReplicatedMergeTree ORDER BY v"),
    ("CREATE VIEW tracks AS SELECT 1", "CREATE VIEW tracks AS SELECT 1"),
])
def test_rewrite(migrate, statement, expected):
    assert migrate.replicated(statement) == expected


def test_the_migrations_table_is_replicated_too(migrate):
    class Recorder:
        def __init__(self):
            self.sql = []

        def command(self, sql, *args, **kwargs):
            self.sql.append(sql)

    recorder = Recorder()
    migrate.ReplicatedClient(recorder).command("CREATE TABLE IF NOT EXISTS vigil_migrations (v UInt32) ENGINE = MergeTree ORDER BY v")
    assert "ENGINE = ReplicatedMergeTree" in recorder.sql[0]
    assert migrate.database_statement("vigil") == (
        "CREATE DATABASE IF NOT EXISTS `vigil` ENGINE = Replicated('/clickhouse/databases/vigil', '{shard}', '{replica}')")
