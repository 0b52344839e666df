"""Every HTTP API authenticates and authorises: the console's API with bearer tokens beside its sessions (roles, and a
camera-scoped token that sees only its cameras: queue, incidents, clips, tracks, tiles, the live socket), the DATEX
II feed (viewer tokens, scopes, the open-data switch), tokens kept only as hashes; and HTTPS with a certificate made
at test time, verified by the client, for the DATEX II server, the re-ID API and the console (uvicorn, real
processes). The re-ID API's own token tests are in tests/reid/test_api.py."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.stack.process import free_port
from services.console.app import create_app
from tests.console.helpers import MemoryIncidents, console_settings, incident_row
from vigil.auth import ROLES, TokenStore, token_hash
from vigil.config import REPO_ROOT
from vigil.evidence import evidence_uris
from vigil.outputs.datex2 import SITUATIONS_FILE, serve
from vigil.tls import TlsConfigError, server_context

CAM1 = "cam-1:stopped_vehicle:1700000000000"
CAM2 = "cam-2:wrong_way:1700000001000"


def test_roles_are_ordered_and_tokens_are_stored_as_hashes(tmp_path):
    assert ROLES == ("viewer", "analyst", "operator", "admin")
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add("feed", "viewer", ["gate"])
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text and token_hash(token) in text
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    principal = store.authenticate(token)
    assert (principal.name, principal.role, principal.cameras) == ("feed", "viewer", frozenset({"gate"}))
    assert store.authenticate(token + "x") is None and store.authenticate("") is None
    with pytest.raises(ValueError, match="exists already"):
        store.add("feed", "viewer")
    with pytest.raises(ValueError, match="unknown role"):
        store.add("other", "root")
    # the secret setting takes the same JSON (hashes only), e.g. from a Kubernetes Secret
    extra = TokenStore(None, json.dumps({"tokens": {"ci": {"role": "analyst", "sha256": token_hash("vigil_ci")}}}))
    assert extra.authenticate("vigil_ci").role == "analyst"
    with pytest.raises(ValueError, match="sha256"):
        TokenStore(None, json.dumps({"tokens": {"ci": {"role": "analyst", "token": "plain"}}}))
    assert store.remove("feed") and store.authenticate(token) is None  # revoked at once


# --- the console's API with tokens ----------------------------------------------------------------------------------

@pytest.fixture
def console(tmp_path):
    settings = console_settings(tmp_path)
    snapshot_uri, clip_uri = evidence_uris(settings.frame_store_uri, "cam-1", CAM1)
    store = MemoryIncidents([incident_row(CAM1, snapshot_uri=snapshot_uri, clip_uri=clip_uri),
                             incident_row(CAM2, camera_id="cam-2", kind="wrong_way")])
    published: list[dict] = []
    app = create_app(settings, incident_store=store, publish=published.append, kafka=False)
    tokens = TokenStore(settings.tokens_path)
    issued = {name: tokens.add(name, role, cameras) for name, role, cameras in (
        ("wall", "viewer", None), ("bot", "operator", None), ("cam1-bot", "operator", ["cam-1"]))}
    return app, issued, published


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_console_api_takes_tokens_with_their_roles(console):
    app, issued, published = console
    client = TestClient(app)
    refused = client.get("/api/incidents")
    assert refused.status_code == 401 and "Bearer" in refused.json()["detail"]
    unknown = client.get("/api/incidents", headers=bearer("vigil_nope"))
    assert unknown.status_code == 401 and "not known" in unknown.json()["detail"]
    wall = client.get("/api/incidents", headers=bearer(issued["wall"]))
    assert wall.status_code == 200 and {r["incident_id"] for r in wall.json()} == {CAM1, CAM2}
    denied = client.post(f"/api/incidents/{CAM1}/verdict", json={"verdict": "confirmed"}, headers=bearer(issued["wall"]))
    assert denied.status_code == 403 and "needs operator" in denied.json()["detail"]
    # a program acts without a CSRF token (it has no cookie to be forged with); the actor names the token
    done = client.post(f"/api/incidents/{CAM1}/verdict", json={"verdict": "confirmed"}, headers=bearer(issued["bot"]))
    assert done.status_code == 200, done.text
    assert [r["actor"] for r in published] == ["token:bot"]
    me = client.get("/api/auth/me", headers=bearer(issued["bot"])).json()
    assert (me["user"], me["role"], me["csrf"], me["cameras"]) == ("token:bot", "operator", None, None)
    assert client.get("/api/users", headers=bearer(issued["bot"])).status_code == 403


def test_a_scoped_token_sees_only_its_cameras(console):
    app, issued, published = console
    client = TestClient(app, headers=bearer(issued["cam1-bot"]))
    assert [r["incident_id"] for r in client.get("/api/incidents").json()] == [CAM1]
    assert client.get("/api/incidents", params={"camera": "cam-2"}).status_code == 403
    assert client.get("/api/incidents/filters").json()["cameras"] == ["cam-1"]
    assert {r["camera_id"] for r in client.get("/api/incidents/noisiest").json()} <= {"cam-1"}
    assert client.get(f"/api/incidents/{CAM1}").status_code == 200
    for path in (f"/api/incidents/{CAM2}", f"/api/incidents/{CAM2}/tracks", f"/api/incidents/{CAM2}/clip",
                 f"/api/incidents/{CAM2}/snapshot", "/api/cameras/cam-2", "/api/cameras/cam-2/frame.jpg"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
    assert client.post(f"/api/incidents/{CAM2}/verdict", json={"verdict": "confirmed"}).status_code == 404
    assert published == []
    hub = app.state.console.hub
    hub._camera("cam-1"), hub._camera("cam-2")
    assert [c["camera_id"] for c in client.get("/api/cameras").json()] == ["cam-1"]
    with TestClient(app) as live:  # the live socket takes a program's token too, and keeps to its cameras
        with live.websocket_connect("/api/live/ws", headers=bearer(issued["cam1-bot"])) as websocket:
            hello = json.loads(websocket.receive_text())
            assert hello["user"] == "token:cam1-bot" and [c["camera_id"] for c in hello["cameras"]] == ["cam-1"]
            hub.handle("CameraStatus", {"camera_id": "cam-2", "state": "OFFLINE", "ts_ms": 1, "actual_fps": 0.0,
                                        "message": "x", "frames_published": 0, "decode_errors": 0, "reconnects": 0})
            hub.handle("CameraStatus", {"camera_id": "cam-1", "state": "ONLINE", "ts_ms": 1, "actual_fps": 5.0,
                                        "message": None, "frames_published": 1, "decode_errors": 0, "reconnects": 0})
            event = json.loads(websocket.receive_text())
            assert (event["t"], event["camera_id"]) == ("status", "cam-1"), "cam-2's status never reached it"
        with pytest.raises(WebSocketDisconnect) as refused:
            with live.websocket_connect("/api/live/ws", headers=bearer("vigil_nope")) as websocket:
                websocket.receive_text()
        assert refused.value.code == 4401


# --- the DATEX II feed ----------------------------------------------------------------------------------------------

def fetch(port: int, path: str, token: str | None = None, context: ssl.SSLContext | None = None):
    connection = (http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context) if context
                  else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    try:
        connection.request("GET", path, headers=bearer(token) if token else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def feed(tmp_path):
    root = tmp_path / "datex2"
    (root / "gate").mkdir(parents=True)
    (root / "dock").mkdir()
    (root / SITUATIONS_FILE).write_bytes(b"<situations/>")
    (root / "gate" / "latest.xml").write_bytes(b"<gate/>")
    (root / "dock" / "latest.xml").write_bytes(b"<dock/>")
    tokens = TokenStore(tmp_path / "tokens.json")
    issued = {"viewer": tokens.add("viewer", "viewer"), "gate": tokens.add("gate", "viewer", ["gate"])}
    return root, tokens, issued


def test_the_datex2_feed_needs_a_viewer_token_and_keeps_to_its_scope(feed):
    root, tokens, issued = feed
    server = serve(root, "127.0.0.1", 0, tokens=tokens)
    port = server.server_address[1]
    try:
        status, headers, body = fetch(port, "/datex2/situations.xml")
        assert status == 401 and b"Bearer" in body and headers["WWW-Authenticate"].startswith("Bearer")
        assert fetch(port, "/datex2/situations.xml", "vigil_wrong")[0] == 401
        assert fetch(port, "/datex2/situations.xml", issued["viewer"])[2] == b"<situations/>"
        assert fetch(port, "/datex2/dock/latest.xml", issued["viewer"])[2] == b"<dock/>"
        assert fetch(port, "/datex2/gate/latest.xml", issued["gate"])[2] == b"<gate/>"
        assert fetch(port, "/datex2/dock/latest.xml", issued["gate"])[0] == 404
        status, _, body = fetch(port, "/datex2/situations.xml", issued["gate"])
        assert status == 403 and b"every camera" in body
    finally:
        server.shutdown()
        server.server_close()
    public = serve(root, "127.0.0.1", 0, public=True)  # VIGIL_DATEX2_PUBLIC: an open-data feed
    try:
        assert fetch(public.server_address[1], "/datex2/situations.xml")[0] == 200
    finally:
        public.shutdown()
        public.server_close()
    nobody = serve(root, "127.0.0.1", 0)  # no tokens configured: nobody gets in
    try:
        assert fetch(nobody.server_address[1], "/datex2/situations.xml")[0] == 401
    finally:
        nobody.shutdown()
        nobody.server_close()


# --- HTTPS ----------------------------------------------------------------------------------------------------------

def client_context(cert) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))  # verifies the chain and the host name (127.0.0.1)


class Tls:
    def __init__(self, cert, key):
        self.tls_cert_file, self.tls_key_file = cert, key


def test_the_datex2_feed_over_https(feed, certificate):
    root, tokens, issued = feed
    cert, key = certificate
    server = serve(root, "127.0.0.1", 0, tokens=tokens, context=server_context(Tls(cert, key)))
    port = server.server_address[1]
    try:
        assert fetch(port, "/datex2/gate/latest.xml", issued["viewer"], client_context(cert))[2] == b"<gate/>"
        with pytest.raises(ssl.SSLCertVerificationError):
            fetch(port, "/datex2/gate/latest.xml", issued["viewer"], ssl.create_default_context())  # unknown CA
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
            fetch(port, "/datex2/gate/latest.xml", issued["viewer"])  # plain HTTP is not answered
        # the server still answers after those failed handshakes
        assert fetch(port, "/datex2/situations.xml", issued["viewer"], client_context(cert))[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_tls_settings_are_checked_at_start_up(certificate, tmp_path):
    cert, key = certificate
    with pytest.raises(TlsConfigError, match="both"):
        server_context(Tls(cert, None))
    with pytest.raises(TlsConfigError, match="no such file"):
        server_context(Tls(cert, tmp_path / "missing.pem"))
    with pytest.raises(TlsConfigError, match="not a PEM"):
        server_context(Tls(key, cert))
    assert server_context(Tls(None, None)) is None


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def https_service(args: list[str], env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.cli", *args, "--port", str(port)], cwd=REPO_ROOT,
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, process)
    return process, port


def test_the_reid_api_and_the_console_serve_https(store_dsn, certificate, tmp_path):
    from services.console.users import UserStore

    cert, key = certificate
    tokens = TokenStore(tmp_path / "auth" / "tokens.json")
    analyst = tokens.add("analyst", "analyst")
    env = {"VIGIL_DATA_DIR": str(tmp_path), "VIGIL_CLICKHOUSE_DSN": store_dsn, "VIGIL_TLS_CERT_FILE": str(cert),
           "VIGIL_TLS_KEY_FILE": str(key), "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "VIGIL_CONSOLE_SECRET_KEY": "s" * 40}
    context = client_context(cert)
    api, port = https_service(["reid-api"], env)
    try:
        status, _, body = fetch(port, "/transit", analyst, context)
        assert status == 200 and json.loads(body) == [], body
        assert fetch(port, "/transit", None, context)[0] == 401
    finally:
        api.terminate()
        api.wait(30)
    UserStore(tmp_path / "console" / "users.json").add("otto", "operator", "operator-pass-1")
    console, port = https_service(["console"], env)
    try:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        connection.request("POST", "/api/auth/login", body=json.dumps({"username": "otto", "password": "operator-pass-1"}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        cookie = response.getheader("Set-Cookie")
        assert "Secure" in cookie and "HttpOnly" in cookie  # served over HTTPS: the cookie never travels in clear
        connection.close()
    finally:
        console.terminate()
        output = console.communicate(timeout=30)[0]
    assert "https://" in output and "operator-pass-1" not in output
