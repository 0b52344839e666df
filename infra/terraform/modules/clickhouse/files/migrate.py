"""The migration Job's program: Vigil's versioned migrations (vigil.store.migrate) on a replicated ClickHouse cluster.

The migrations are portable single-node DDL (ENGINE = ReplacingMergeTree ...). Here the target database is created
with the Replicated database engine, so every CREATE reaches every replica and shard through Keeper, and each
*MergeTree engine becomes its Replicated* form (arguments kept; ZooKeeper path and replica name from the server's
defaults), so the replicas of a shard hold the same rows. Runs until the cluster answers (the Job retries), then applies
what is pending, once, recorded in vigil_migrations (itself replicated).
"""

from __future__ import annotations

import re
import sys
import time
from urllib.parse import urlparse, urlunparse

ENGINE = re.compile(r"(ENGINE\s*=\s*)(?!Replicated)(\w*MergeTree)\b")


def replicated(statement: str) -> str:
    """ENGINE = XMergeTree[(args)] → ENGINE = ReplicatedXMergeTree[(args)]; anything else unchanged."""
    return ENGINE.sub(lambda m: f"{m.group(1)}Replicated{m.group(2)}", statement)


class ReplicatedClient:
    """A clickhouse-connect client whose DDL creates replicated tables."""

    def __init__(self, client):
        self.client = client

    def command(self, sql: str, *args, **kwargs):
        return self.client.command(replicated(sql), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def database_statement(database: str) -> str:
    return (f"CREATE DATABASE IF NOT EXISTS `{database}` "
            f"ENGINE = Replicated('/clickhouse/databases/{database}', '{{shard}}', '{{replica}}')")


def main() -> int:
    import clickhouse_connect

    from vigil.config import Settings
    from vigil.store.migrate import apply_migrations

    settings = Settings()
    dsn = urlparse(settings.clickhouse_dsn)
    database = dsn.path.strip("/") or "vigil"
    server = urlunparse(dsn._replace(path="/default"))
    for attempt in range(60):
        try:
            clickhouse_connect.get_client(dsn=server).command(database_statement(database))
            break
        except Exception as exc:  # the cluster is still starting
            print(f"waiting for ClickHouse ({attempt + 1}/60): {str(exc).splitlines()[0]}", flush=True)
            time.sleep(10)
    else:
        return 1
    client = clickhouse_connect.get_client(dsn=settings.clickhouse_dsn)
    applied = apply_migrations(ReplicatedClient(client), settings.clickhouse_ttl_days)
    print(f"applied {applied or 'nothing (up to date)'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
