"""The embedded ClickHouse: one process owns the chDB directory and speaks the ClickHouse HTTP protocol on 127.0.0.1.

chDB allows one process per data directory, so every other process (the sink, `vigil sql`, the re-ID API) reaches the
store through this process with an ordinary `http://` clickhouse-connect DSN, exactly as it would reach a production
ClickHouse server. The engine is opened through clickhouse-connect's `chdb://` DSN (which runs the migrations); HTTP
requests are answered on chDB connection handles of that same engine, one per request, so a request's settings
(`readonly=1` from the analyst paths included, which chDB enforces) never outlive it. It listens on 127.0.0.1 only and
has no users: on a server, read-only access is a ClickHouse user with `readonly` and SELECT grants (README "Security").
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import signal
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import chdb
import clickhouse_connect

from vigil.store.migrate import apply_migrations

log = logging.getLogger("vigil.store")

# Parameters the HTTP transport consumes itself; everything else that is not `param_*` is a ClickHouse setting.
TRANSPORT_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id", "quota_key",
    "compress", "decompress", "wait_end_of_query", "client_protocol_version", "role", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "enable_http_compression", "buffer_size", "user", "password",
}
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_INSERT_FORMAT = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
# clickhouse-connect may prepend the INSERT statement to the data in the body instead of sending it as `query`.
_INSERT_HEAD = re.compile(rb"^\s*(INSERT\s+INTO\s+.+?\s+FORMAT\s+\w+)[ \t]*\r?\n", re.IGNORECASE | re.DOTALL)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")


def _decompress(data: bytes, encoding: str | None) -> bytes:
    """Undo a request's Content-Encoding. clickhouse-connect streams inserts as one compressed frame per block, so
    concatenated lz4/zstd frames are all decoded, not just the first."""
    if not data or not encoding or encoding == "identity":
        return data
    if encoding == "lz4":
        import lz4.frame

        out, rest = [], data
        while rest:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out.append(decompressor.decompress(rest))
            rest = decompressor.unused_data
        return b"".join(out)
    if encoding == "zstd":
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            return reader.read()
    if encoding == "gzip":
        import gzip

        return gzip.decompress(data)
    from clickhouse_connect.driver._backend.httpcommon import decompress_response

    return decompress_response(data, encoding)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ChdbHttpFacade:
    """Executes ClickHouse-HTTP requests on the process's chDB engine."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="vigil-store-"))

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, str | None, dict]:
        query = params.get("query")
        infile = None
        if query is None:
            head = _INSERT_HEAD.match(body[:65536])
            if head:
                query, body = head.group(1).decode(), body[head.end():]
            else:
                query, body = body.decode(), b""
        if body:
            insert = _INSERT_FORMAT.match(query)
            if insert:
                fd, infile = tempfile.mkstemp(dir=self.tmp_dir, suffix=".data")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                query = f"{insert.group(1)} FROM INFILE {_quote(infile)} FORMAT {insert.group(2)}"
            else:
                query = f"{query}\n{body.decode()}"
        bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        embedded = _TRAILING_FORMAT.search(query)
        fmt = embedded.group(1) if embedded else params.get("default_format", "TabSeparated")
        try:
            with self.lock:
                conn = chdb.connect(str(self.path))
                try:
                    if params.get("database"):
                        if not _SETTING_NAME.match(params["database"]):
                            raise ValueError(f"Code: 81. DB::Exception: Database {params['database']!r} does not exist")
                        conn.query(f"USE `{params['database']}`", "TabSeparated")
                    # readonly last: once set, chDB (like ClickHouse) refuses to change any other setting
                    for name, value in sorted(settings.items(), key=lambda item: item[0] == "readonly"):
                        if not _SETTING_NAME.match(name):
                            raise ValueError(f"Code: 115. DB::Exception: Unknown setting {name!r}")
                        conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                    result = conn.query(query, fmt, params=bind)
                    payload = result.bytes() or b""
                    summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                               "elapsed_ns": str(int(result.elapsed() * 1e9))}
                finally:
                    conn.close()
        finally:
            if infile:
                os.unlink(infile)
        return payload, fmt if payload or embedded else None, summary


def make_handler(facade: ChdbHttpFacade):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "vigil-chdb"

        def log_message(self, fmt, *args):  # route access logs through logging at debug level
            log.debug(fmt, *args)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, payload: bytes, headers: dict[str, str] | None = None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self):
            url = urlparse(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            body = _decompress(self._read_body(), self.headers.get("Content-Encoding"))
            if url.path in ("/ping", "/") and "query" not in params and not body:
                return self._reply(200, b"Ok.\n")
            if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                return self._reply(501, b"Code: 48. DB::Exception: external data is not supported by the embedded store\n")
            try:
                payload, fmt, summary = facade.execute(params, body)
            except Exception as exc:  # chDB raises RuntimeError with the ClickHouse message
                message = str(exc)
                code = _ERROR_CODE.search(message)
                start = message.find("Code:")
                text = (message[start:] if start >= 0 else f"Code: 1000. DB::Exception: {message}").strip() + "\n"
                return self._reply(500, text.encode(), {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"})
            headers = {"X-ClickHouse-Summary": json.dumps(summary), "X-ClickHouse-Timezone": "UTC",
                       "X-ClickHouse-Server-Display-Name": "vigil-chdb", "Content-Type": "application/octet-stream"}
            if fmt:
                headers["X-ClickHouse-Format"] = fmt
            self._reply(200, payload, headers)

        do_GET = _handle
        do_POST = _handle

    return Handler


def serve(path: Path, host: str, port: int, ttl_days: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    applied = apply_migrations(client, ttl_days=ttl_days)
    log.info("store %s: migrations applied this start: %s", path, applied or "none")
    server = ThreadingHTTPServer((host, port), make_handler(ChdbHttpFacade(path)))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log.info("store listening on http://%s:%d", host, port)
    print(f"ready http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a chDB store over the ClickHouse HTTP protocol.")
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttl-days", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.path, args.host, args.port, args.ttl_days)


if __name__ == "__main__":
    main()
