"""The one way services open ClickHouse: clickhouse-connect on the configured DSN (embedded store or a real server)."""

from __future__ import annotations

import clickhouse_connect

from vigil.config import Settings


def connect(settings: Settings, **kwargs):
    return clickhouse_connect.get_client(dsn=settings.clickhouse_dsn, **kwargs)
