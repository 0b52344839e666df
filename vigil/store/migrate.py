"""Versioned migrations: `migrations/NNNN_name.sql`, applied in order once each, recorded in `vigil_migrations`.

The DDL is portable ClickHouse (no chDB-only features), so the same migrations run on the embedded store and on a
production server (`vigil store migrate` with `VIGIL_CLICKHOUSE_DSN` pointing at it).
"""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} must be named NNNN_snake_name.sql")
        found.append((int(match.group(1)), match.group(2), path.read_text()))
    return found


def statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in without_comments.split(";\n") if s.strip().rstrip(";").strip()]


def apply_migrations(client, ttl_days: int = 30) -> list[str]:
    """Apply pending migrations through a clickhouse-connect client; return the names applied."""
    client.command(
        "CREATE TABLE IF NOT EXISTS vigil_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query("SELECT version FROM vigil_migrations").result_rows}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        for statement in statements(sql):
            client.command(statement.replace("{ttl_days}", str(int(ttl_days))).rstrip(";"))
        client.insert("vigil_migrations", [[version, name]], column_names=["version", "name"])
        applied.append(f"{version:04d}_{name}")
    return applied
