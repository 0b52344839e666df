"""The one way services open ClickHouse: clickhouse-connect on the configured DSN (embedded store or a real server).

`read_only=True` is how the analyst paths open it (`vigil sql`, the re-ID API, the console's reads): on the read-only
user's DSN when one is configured (`VIGIL_CLICKHOUSE_ANALYST_DSN`), and with `readonly=1` on every query either way,
which ClickHouse and the embedded chDB store both enforce: no INSERT, ALTER, DROP, CREATE, no settings changed, no
file() or url() table functions (tests/security/test_sql_readonly.py checks each on the real store).
"""

from __future__ import annotations

import clickhouse_connect

from vigil.config import Settings

READ_ONLY = {"readonly": 1}


def connect(settings: Settings, read_only: bool = False, **kwargs):
    dsn = settings.clickhouse_dsn
    if read_only:
        dsn = settings.clickhouse_analyst_dsn.get_secret_value() if settings.clickhouse_analyst_dsn else dsn
        kwargs["settings"] = {**kwargs.get("settings", {}), **READ_ONLY}
    return clickhouse_connect.get_client(dsn=dsn, **kwargs)
