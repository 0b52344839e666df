"""The embedded stack: Tansu broker, tritonserver, the chDB-backed ClickHouse store and PyFlink, on 127.0.0.1."""
