"""Fixtures of the security tests: the embedded store alone (chDB behind its ClickHouse HTTP facade, as `vigil stack
up` runs it), a certificate made at test time, and API tokens."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.stack.process import free_port
from vigil.config import REPO_ROOT


@pytest.fixture(scope="module")
def store_dsn(tmp_path_factory):
    """A private embedded store (its own chDB directory and port), migrated; its DSN."""
    path, port = tmp_path_factory.mktemp("store"), free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.stack.chdb_server", "--path", str(path / "clickhouse"),
                                "--port", str(port)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("ready") or process.poll() is not None:
            break
    assert lines and lines[-1].startswith("ready"), "".join(lines)
    yield f"http://127.0.0.1:{port}/default"
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made now with the openssl command line: (cert, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key
