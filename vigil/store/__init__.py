"""The ClickHouse store: versioned migrations, and the embedded chDB store served over the ClickHouse HTTP protocol."""
