"""The ClickHouse sink: result topics → batched inserts with clickhouse-connect, offsets committed after each insert."""
