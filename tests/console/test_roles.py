"""The console's sign-in, sessions and role checks, through FastAPI's TestClient (no browser, no broker, no store:
an in-memory incident store and a recording publisher stand in): every route refuses a caller without a session,
viewers see but cannot act, operators act (as themselves), admins manage users; sessions expire and end on sign-out;
a demoted or removed user loses the rights at the next request; passwords are hashed with argon2id and never logged;
CSRF tokens are required on every change; evidence is served with range requests, only from the frame store; the
live WebSocket refuses callers without a session and pages of other sites, and pushes frames and state changes."""

from __future__ import annotations

import json
import logging
import struct
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from services.console.app import create_app
from services.console.sessions import COOKIE, LoginThrottle, SessionSigner
from services.console.users import UserError, UserStore
from services.console.users import main as console_user
from tests.console.helpers import PASSWORDS, MemoryIncidents, add_users, console_settings, incident_row
from vigil.evidence import evidence_uris

INCIDENT = "cam-1:stopped_vehicle:1700000000000"


@pytest.fixture
def env(tmp_path):
    settings = console_settings(tmp_path)
    add_users(settings)
    frames = tmp_path / "frames"
    snapshot_uri, clip_uri = evidence_uris(settings.frame_store_uri, "cam-1", INCIDENT)
    store = MemoryIncidents([incident_row(INCIDENT, snapshot_uri=snapshot_uri, clip_uri=clip_uri),
                             incident_row("cam-2:wrong_way:1700000001000", camera_id="cam-2", kind="wrong_way")])
    published: list[dict] = []
    app = create_app(settings, incident_store=store, publish=published.append, kafka=False)
    return {"settings": settings, "app": app, "store": store, "published": published, "frames": frames,
            "snapshot_uri": snapshot_uri, "clip_uri": clip_uri}


def signed_in(app, name: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    response = client.post("/api/auth/login", json={"username": name, "password": PASSWORDS[name]})
    assert response.status_code == 200, response.text
    return client, response.json()["csrf"]


# (method, path, body, the least role that may) — every /api route but sign-in/out
ROUTES = [
    ("GET", "/api/auth/me", None, "viewer"),
    ("GET", "/api/cameras", None, "viewer"),
    ("GET", "/api/incidents", None, "viewer"),
    ("GET", "/api/incidents/filters", None, "viewer"),
    ("GET", "/api/incidents/noisiest", None, "viewer"),
    ("GET", f"/api/incidents/{INCIDENT}", None, "viewer"),
    ("GET", f"/api/incidents/{INCIDENT}/tracks", None, "viewer"),
    ("POST", f"/api/incidents/{INCIDENT}/verdict", {"verdict": "acknowledged"}, "operator"),
    ("POST", f"/api/incidents/{INCIDENT}/verdict", {"verdict": "confirmed"}, "operator"),
    ("POST", f"/api/incidents/{INCIDENT}/verdict", {"verdict": "rejected", "reason": "shadow"}, "operator"),
    ("GET", "/api/users", None, "admin"),
    ("POST", "/api/users", {"name": "newbie", "role": "viewer", "password": "newbie-pass-1"}, "admin"),
    ("GET", "/api/live/stats", None, "admin"),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


def test_every_route_needs_a_session(env):
    client = TestClient(env["app"])
    for method, path, body, _ in ROUTES + [("GET", f"/api/incidents/{INCIDENT}/clip", None, "viewer"),
                                           ("GET", f"/api/incidents/{INCIDENT}/snapshot", None, "viewer"),
                                           ("DELETE", "/api/users/vera", None, "admin")]:
        response = client.request(method, path, json=body)
        assert response.status_code == 401, (method, path, response.status_code)
    client.cookies.set(COOKIE, "eyJ1IjoiYWRhIn0.forged")
    assert client.get("/api/incidents").status_code == 401
    assert env["published"] == []


@pytest.mark.parametrize("name", ["vera", "otto", "ada"])
def test_role_matrix(env, name):
    client, csrf = signed_in(env["app"], name)
    role = {"vera": "viewer", "otto": "operator", "ada": "admin"}[name]
    for method, path, body, needs in ROUTES:
        response = client.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
        allowed = RANK[role] >= RANK[needs]
        assert (response.status_code < 400) == allowed, (name, method, path, response.status_code, response.text)
        if not allowed:
            assert response.status_code == 403 and needs in response.json()["detail"]
    # operators and admins published three verdicts each, as themselves; a viewer none
    actors = {record["actor"] for record in env["published"]}
    assert len(env["published"]) == (0 if role == "viewer" else 3) and actors <= {name}


def test_viewer_sees_everything_but_cannot_act(env):
    client, csrf = signed_in(env["app"], "vera")
    assert [row["incident_id"] for row in client.get("/api/incidents").json()] == [INCIDENT, "cam-2:wrong_way:1700000001000"]
    assert [row["incident_id"] for row in client.get("/api/incidents?camera=cam-2").json()] == ["cam-2:wrong_way:1700000001000"]
    assert client.get("/api/incidents?kind=wrong_way&state=open").json()[0]["kind"] == "wrong_way"
    assert client.get("/api/incidents?state=bogus").status_code == 400
    assert client.get("/api/incidents/noisiest").json()[0]["rejected"] == 2
    detail = client.get(f"/api/incidents/{INCIDENT}").json()
    assert detail["verdict"] == "" and detail["has_clip"] is False and detail["clip_url"].endswith("/clip")
    response = client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "rejected", "reason": "shadow"},
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403 and "viewer" in response.json()["detail"]
    assert env["published"] == []


def test_operator_verdicts_are_recorded_as_the_signed_in_user(env):
    client, csrf = signed_in(env["app"], "otto")
    headers = {"X-CSRF-Token": csrf}
    # a rejection needs a reason; an unknown verdict is refused; neither is published
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "rejected"}, headers=headers).status_code == 400
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "rejected", "reason": "  "},
                       headers=headers).status_code == 400
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "deleted"}, headers=headers).status_code == 400
    assert client.post("/api/incidents/nope/verdict", json={"verdict": "confirmed"}, headers=headers).status_code == 404
    assert env["published"] == []
    # the actor comes from the session, whatever the body says
    response = client.post(f"/api/incidents/{INCIDENT}/verdict",
                           json={"verdict": "rejected", "reason": "parked legally", "actor": "ada"}, headers=headers)
    assert response.status_code == 200, response.text
    [record] = env["published"]
    assert record["actor"] == "otto" and record["verdict"] == "rejected" and record["reason"] == "parked legally"
    assert record["incident_id"] == INCIDENT and record["kind"] == "stopped_vehicle" and record["zones"] == ["bay"]
    assert record["verdict_id"] == f"{INCIDENT}:rejected:otto:{record['decided_ms']}"
    assert response.json()["verdict"] == "rejected"


def test_a_broker_that_does_not_acknowledge_is_reported(env):
    def refuse(record):
        raise RuntimeError("the broker did not acknowledge")

    env["app"].state.console.publish = refuse
    client, csrf = signed_in(env["app"], "otto")
    response = client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"},
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 503 and "not recorded" in response.json()["detail"]


def test_changes_need_the_csrf_token(env):
    client, csrf = signed_in(env["app"], "ada")
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"}).status_code == 403
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"},
                       headers={"X-CSRF-Token": "x" * 32}).status_code == 403
    assert client.delete("/api/users/vera").status_code == 403
    assert env["published"] == []
    other, other_csrf = signed_in(env["app"], "otto")  # another session's token does not fit
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"},
                       headers={"X-CSRF-Token": other_csrf}).status_code == 403


def test_sign_in_sign_out_and_expiry(env, tmp_path):
    client = TestClient(env["app"])
    assert client.post("/api/auth/login", json={"username": "otto", "password": "wrong-password"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "nobody", "password": "whatever-1"}).status_code == 401
    response = client.post("/api/auth/login", json={"username": "otto", "password": PASSWORDS["otto"]})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    me = client.get("/api/auth/me").json()
    assert me["user"] == "otto" and me["role"] == "operator" and "CC BY 4.0" in me["credit"]
    assert abs(me["expires_ms"] - (time.time() * 1000 + 8 * 3600 * 1000)) < 60_000
    session_cookie = client.cookies.get(COOKIE)
    assert client.post("/api/auth/logout").status_code == 204
    replay = TestClient(env["app"])
    replay.cookies.set(COOKIE, session_cookie)  # a signed-out session stays dead, even with its old cookie
    assert replay.get("/api/auth/me").status_code == 401

    signer = SessionSigner(b"k" * 40, ttl_s=1.0)
    cookie, session = signer.issue("otto", now_ms=1_000)
    assert signer.read(cookie, now_ms=1_500) == session
    assert signer.read(cookie, now_ms=2_000) is None  # expired
    assert signer.read(cookie[:-2] + "xx", now_ms=1_500) is None  # tampered
    assert SessionSigner(b"j" * 40, ttl_s=1.0).read(cookie, now_ms=1_500) is None  # another key
    with pytest.raises(ValueError):
        SessionSigner(b"short", 1.0)

    short = console_settings(tmp_path / "short", console_session_ttl_s=1.0)
    add_users(short)
    client = TestClient(create_app(short, incident_store=env["store"], publish=env["published"].append, kafka=False))
    client.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]})
    assert client.get("/api/incidents").status_code == 200
    time.sleep(1.2)
    assert client.get("/api/incidents").status_code == 401


def test_role_changes_apply_at_the_next_request(env):
    client, csrf = signed_in(env["app"], "otto")
    headers = {"X-CSRF-Token": csrf}
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"}, headers=headers).status_code == 200
    users = UserStore(env["settings"].users_path)  # as `vigil console-user role otto viewer` would, from outside
    users.set_role("otto", "viewer")
    assert client.post(f"/api/incidents/{INCIDENT}/verdict", json={"verdict": "confirmed"}, headers=headers).status_code == 403
    assert client.get("/api/auth/me").json()["role"] == "viewer"
    users.remove("otto")
    assert client.get("/api/incidents").status_code == 401


def test_admin_manages_users(env):
    client, csrf = signed_in(env["app"], "ada")
    headers = {"X-CSRF-Token": csrf}
    assert {u["name"]: u["role"] for u in client.get("/api/users").json()} == {"ada": "admin", "otto": "operator",
                                                                              "vera": "viewer"}
    assert client.post("/api/users", json={"name": "nina", "role": "operator", "password": "nina-pass-1"},
                       headers=headers).status_code == 201
    assert client.post("/api/users", json={"name": "nina", "role": "operator", "password": "nina-pass-1"},
                       headers=headers).status_code == 400  # exists
    assert client.post("/api/users", json={"name": "x", "role": "root", "password": "password-1"},
                       headers=headers).status_code == 400
    nina = TestClient(env["app"])
    assert nina.post("/api/auth/login", json={"username": "nina", "password": "nina-pass-1"}).json()["role"] == "operator"
    assert client.delete("/api/users/ada", headers=headers).status_code == 400  # not yourself
    assert client.delete("/api/users/nina", headers=headers).status_code == 204
    assert nina.get("/api/incidents").status_code == 401


def test_passwords_are_argon2_hashed_and_never_logged(env, caplog, capsys, monkeypatch, tmp_path):
    caplog.set_level(logging.DEBUG)
    client = TestClient(env["app"])
    client.post("/api/auth/login", json={"username": "otto", "password": "a-wrong-secret-guess"})
    client.post("/api/auth/login", json={"username": "otto", "password": PASSWORDS["otto"]})
    text = env["settings"].users_path.read_text()
    assert all(password not in text for password in PASSWORDS.values())
    entries = json.loads(text)["users"]
    assert all(entry["hash"].startswith("$argon2id$") for entry in entries.values())
    assert env["settings"].users_path.stat().st_mode & 0o777 == 0o600
    logged = caplog.text + capsys.readouterr().err
    assert "sign-in refused for 'otto'" in logged and "otto (operator) signed in" in logged
    assert PASSWORDS["otto"] not in logged and "a-wrong-secret-guess" not in logged
    # the secret cookie key is not in the logs or in the settings' repr either
    assert "k" * 40 not in repr(env["settings"]) and "k" * 40 not in logged

    # `vigil console-user add` reads the password from stdin and prints no secret
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "cli"))
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("cli-password-1\n"))
    assert console_user(["add", "carl", "--role", "operator", "--password-stdin"]) == 0
    assert console_user(["list"]) == 0
    out = capsys.readouterr()
    assert "carl\toperator" in out.out and "cli-password-1" not in out.out + out.err
    assert UserStore(tmp_path / "cli" / "console" / "users.json").verify("carl", "cli-password-1").role == "operator"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert console_user(["add", "dora", "--role", "viewer", "--password-stdin"]) == 2


def test_user_store_rules(tmp_path):
    store = UserStore(tmp_path / "users.json")
    with pytest.raises(UserError):
        store.add("bad name", "viewer", "password-1")
    with pytest.raises(UserError):
        store.add("ok", "superuser", "password-1")
    with pytest.raises(UserError):
        store.add("ok", "viewer", "short")
    store.add("ok", "viewer", "password-1")
    with pytest.raises(UserError):
        store.add("ok", "viewer", "password-2")
    assert store.verify("ok", "password-1").role == "viewer"
    generated = store.add_generated("demo", "operator")
    assert len(generated) >= 12 and store.verify("demo", generated).role == "operator"
    assert store.verify("ok", "password-2") is None and store.verify("ghost", "password-1") is None


def test_sign_in_throttle(env):
    client = TestClient(env["app"])
    for _ in range(5):
        assert client.post("/api/auth/login", json={"username": "vera", "password": "guess-guess"}).status_code == 401
    response = client.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]})
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
    assert client.post("/api/auth/login", json={"username": "otto", "password": PASSWORDS["otto"]}).status_code == 200
    throttle = LoginThrottle(2, 0.2)
    throttle.failed("a"), throttle.failed("a")
    assert throttle.locked("a") > 0
    time.sleep(0.25)
    assert throttle.locked("a") == 0


def test_evidence_with_range_requests_only_from_the_store(env):
    from vigil.framestore import LocalFrameStore

    store = LocalFrameStore(env["frames"])
    clip = bytes(range(256)) * 40  # 10,240 bytes standing in for the MP4
    store.put_object(env["clip_uri"], clip)
    client, _ = signed_in(env["app"], "vera")
    assert client.get(f"/api/incidents/{INCIDENT}/snapshot").status_code == 404  # not written yet
    whole = client.get(f"/api/incidents/{INCIDENT}/clip")
    assert whole.status_code == 200 and whole.content == clip and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/incidents/{INCIDENT}/clip", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == clip[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(clip)}"
    tail = client.get(f"/api/incidents/{INCIDENT}/clip", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == clip[-100:]
    assert client.get(f"/api/incidents/{INCIDENT}", ).json()["has_clip"] is True
    # an incident whose URI points outside the frame store is refused, never read
    env["store"].rows[INCIDENT]["clip_uri"] = "file:///etc/passwd"
    assert client.get(f"/api/incidents/{INCIDENT}/clip").status_code == 403


def test_pages_are_offline_and_locked_down(env):
    client = TestClient(env["app"])
    page = client.get("/")
    assert page.status_code == 200 and "/static/console.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/console.js", "/static/console.css", "/static/login.js", "/login"):
        body = client.get(asset)
        assert body.status_code == 200, asset
        assert "http://" not in body.text and "https://" not in body.text, f"{asset} loads something from elsewhere"
    assert client.get("/openapi.json").json()["info"]["title"] == "Vigil operator console"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()


def _jpeg(width=64, height=36) -> bytes:
    return cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))[1].tobytes()


def _batch(camera_id: str, capture_ms: int, uri: str) -> dict:
    return {"batch_id": f"{camera_id}:{capture_ms}", "model_name": "m", "model_version": "1",
            "frame": {"frame_id": f"{camera_id}:0:{capture_ms}", "camera_id": camera_id, "capture_ts_ms": capture_ms,
                      "sequence": 0, "width": 64, "height": 36, "encoding": "jpeg", "uri": uri,
                      "ingest_ts_ms": capture_ms, "trace_context": {}},
            "xyxy": [1.0, 2.0, 30.0, 20.0], "class_id": [2], "confidence": [0.9], "track_id": [7],
            "inference_ts_ms": capture_ms + 5, "ended_track_ids": []}


def receive_until(websocket, want, limit=50):
    for _ in range(limit):
        message = websocket.receive()
        if message.get("bytes") is not None:
            data = message["bytes"]
            (length,) = struct.unpack(">I", data[:4])
            event = {**json.loads(data[4:4 + length]), "jpeg": data[4 + length:]}
        else:
            event = json.loads(message["text"])
        if want(event):
            return event
    raise AssertionError("never received the expected message")


def test_live_socket_needs_a_session_and_the_same_origin(env):
    with TestClient(env["app"]) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/api/live/ws") as websocket:
                websocket.receive_text()
        assert refused.value.code == 4401
        client.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]})
        with pytest.raises(WebSocketDisconnect) as cross:
            with client.websocket_connect("/api/live/ws", headers={"Origin": "http://evil.example"}) as websocket:
                websocket.receive_text()
        assert cross.value.code == 4403


def test_live_socket_pushes_frames_health_and_state_changes(env):
    from vigil.framestore import LocalFrameStore

    store = LocalFrameStore(env["frames"])
    hub = env["app"].state.console.hub
    now = int(time.time() * 1000)
    with TestClient(env["app"]) as client:
        client.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]})
        with client.websocket_connect("/api/live/ws") as websocket:
            hello = json.loads(websocket.receive_text())
            assert hello["t"] == "hello" and hello["role"] == "viewer" and "CC BY 4.0" in hello["credit"]
            uri = store.put("cam-1", 0, now, _jpeg(), "jpg")
            hub.handle("DetectionBatch", _batch("cam-1", now, uri))
            hub.flush_frames()
            frame = receive_until(websocket, lambda e: e.get("t") == "frame")
            assert frame["camera_id"] == "cam-1" and frame["boxes"] == [[1.0, 2.0, 30.0, 20.0]]
            assert frame["classes"] == [2] and frame["tracks"] == [7] and frame["jpeg"][:2] == b"\xff\xd8"
            # an older (replayed) frame does not replace the newer one
            hub.handle("DetectionBatch", _batch("cam-1", now - 1000, uri))
            assert hub.cameras["cam-1"].header["capture_ts_ms"] == now
            hub.handle("CameraStatus", {"camera_id": "cam-1", "state": "DEGRADED", "ts_ms": now, "actual_fps": 4.0,
                                        "message": "decode errors", "frames_published": 1, "decode_errors": 3,
                                        "reconnects": 0})
            status = receive_until(websocket, lambda e: e.get("t") == "status")
            assert status["status"]["state"] == "DEGRADED" and status["moved"] is False
            moved = {"incident_id": "cam-1:camera_moved:1", "revision": 1, "camera_id": "cam-1", "kind": "camera_moved",
                     "state": "open", "severity": "high", "zones": [], "track_ids": [], "opened_ms": now,
                     "updated_ms": now, "cleared_ms": None}
            hub.handle("Incident", moved)
            assert receive_until(websocket, lambda e: e.get("t") == "status" and e["moved"])["camera_id"] == "cam-1"
            assert receive_until(websocket, lambda e: e.get("t") == "incident")["kind"] == "camera_moved"
            hub.handle("Incident", {**moved, "revision": 2, "state": "cleared", "cleared_ms": now + 5})
            assert receive_until(websocket, lambda e: e.get("t") == "status")["moved"] is False
            verdict = {"verdict_id": "v", "incident_id": INCIDENT, "camera_id": "cam-1", "kind": "stopped_vehicle",
                       "zones": ["bay"], "verdict": "rejected", "reason": "shadow", "actor": "otto", "decided_ms": now}
            hub.handle("IncidentVerdict", verdict)
            event = receive_until(websocket, lambda e: e.get("t") == "verdict")
            assert event["verdict"] == "rejected" and event["actor"] == "otto"
            # until the sink stored it, the queue shows the verdict seen on Kafka
            assert client.get("/api/incidents").json()[0]["verdict"] == "rejected"
            # the page reports what it drew: capture → tile delay
            websocket.send_text(json.dumps({"t": "drawn", "samples": [[now, now + 10, now + 40]]}))
            # frames only of the cameras asked for
            websocket.send_text(json.dumps({"t": "subscribe", "frames": True, "cameras": ["cam-9"]}))
            time.sleep(0.2)
            hub.handle("DetectionBatch", _batch("cam-1", now + 200, store.put("cam-1", 1, now + 200, _jpeg(), "jpg")))
            hub.cameras["cam-1"].last_push_wall = 0
            hub.flush_frames()
            time.sleep(0.3)
            assert env["app"].state.console.hub.stats()["frames_pushed"] == 1
        admin, _ = signed_in(env["app"], "ada")
        stats = admin.get("/api/live/stats").json()
        assert stats["capture_to_tile_ms"]["n"] == 1 and stats["capture_to_tile_ms"]["p50"] == 40.0
        assert stats["frames_in"] == 0  # (handled directly, not consumed from Kafka)
        cameras = admin.get("/api/cameras").json()
        assert cameras[0]["camera_id"] == "cam-1" and cameras[0]["status"]["state"] == "DEGRADED"
        newest = admin.get("/api/cameras/cam-1/frame.jpg")
        assert newest.status_code == 200 and newest.content[:2] == b"\xff\xd8"


def test_frames_outside_the_store_are_not_read(env, tmp_path):
    hub = env["app"].state.console.hub
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(_jpeg())
    assert hub.read_jpeg(outside.as_uri()) is None and hub.counters["unreadable_frames"] == 1


def test_camera_file_geometry(tmp_path):
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("""
cameras:
  - id: car-park
    url: /dev/null
    zones:
      - {name: bay, kind: traffic, polygon: [[0, 0], [100, 0], [100, 50]], direction: [0, 1]}
    traffic:
      lanes:
        - {name: lane-down, number: 1, polygon: [[0, 0], [290, 0], [290, 432], [0, 432]], direction: [0, 1]}
      count_lines:
        - {name: down-line, lane: lane-down, start: [0, 216], end: [290, 216], positive: [0, 1]}
""")
    settings = console_settings(tmp_path, console_cameras=cameras)
    add_users(settings)
    client, _ = signed_in(create_app(settings, incident_store=MemoryIncidents([]), publish=print, kafka=False), "vera")
    [camera] = client.get("/api/cameras").json()
    assert camera["camera_id"] == "car-park" and camera["geometry"]["zones"][0]["direction"] == [0, 1]
    assert camera["geometry"]["lanes"][0]["name"] == "lane-down"
    assert camera["geometry"]["count_lines"][0]["start"] == [0, 216]
