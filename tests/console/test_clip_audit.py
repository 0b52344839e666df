"""The audit of clip views (services/console/audit.py, ClickHouse clip_views): the console, on the real store, records
who fetched which incident's clip (user, role, range, address) before serving it; a clip not written yet is neither
served nor recorded; and when the view cannot be recorded the clip is refused (503), never served unaudited."""

from __future__ import annotations

import datetime
import uuid

from fastapi.testclient import TestClient

from services.console.app import create_app
from tests.conftest import isolated
from tests.console.helpers import PASSWORDS, MemoryIncidents, add_users, console_settings, incident_row
from vigil.evidence import evidence_uris
from vigil.framestore import open_frame_store
from vigil.store.client import connect

CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app)
    assert client.post("/api/auth/login", json={"username": name, "password": PASSWORDS[name]}).status_code == 200
    return client


def test_a_served_clip_is_recorded_with_who_viewed_it(stack, tmp_path):
    overrides, _ = isolated(stack)
    settings = console_settings(tmp_path, clickhouse_dsn=stack.clickhouse_dsn, frame_store=overrides["frame_store"])
    add_users(settings)
    camera = f"audit-{uuid.uuid4().hex[:6]}"
    incident, unwritten = f"{camera}:stopped_vehicle:1800000000000", f"{camera}:wrong_way:1800000060000"
    store = connect(settings)
    for incident_id in (incident, unwritten):
        snapshot_uri, clip_uri = evidence_uris(settings.frame_store_uri, camera, incident_id)
        opened = datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.timezone.utc)
        row = {"incident_id": incident_id, "revision": 1, "camera_id": camera, "kind": incident_id.split(":")[1],
               "state": "open", "severity": "medium", "opened": opened, "updated": opened,
               "snapshot_uri": snapshot_uri, "clip_uri": clip_uri}
        store.insert("incidents", [list(row.values())], column_names=list(row))
    clip_uri = evidence_uris(settings.frame_store_uri, camera, incident)[1]
    open_frame_store(settings.frame_store_uri).put_object(clip_uri, CLIP)

    client = signed_in(create_app(settings, kafka=False), "vera")
    part = client.get(f"/api/incidents/{incident}/clip", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == CLIP[:100]
    whole = client.get(f"/api/incidents/{incident}/clip")
    assert whole.status_code == 200 and whole.content == CLIP
    assert client.get(f"/api/incidents/{unwritten}/clip").status_code == 404

    rows = store.query("SELECT actor, role, incident_id, camera_id, clip_uri, range, client_address FROM clip_views "
                       "WHERE camera_id = {c:String} ORDER BY viewed, range DESC", parameters={"c": camera}).result_rows
    assert rows == [("vera", "viewer", incident, camera, clip_uri, "bytes=0-99", "testclient"),
                    ("vera", "viewer", incident, camera, clip_uri, "", "testclient")]


class AuditDown(MemoryIncidents):
    def record_clip_view(self, view):
        raise ConnectionError("ClickHouse at 127.0.0.1:1 refused the connection")


def test_a_view_that_cannot_be_recorded_is_not_served(tmp_path):
    settings = console_settings(tmp_path)
    add_users(settings)
    incident = "cam-1:stopped_vehicle:1700000000000"
    snapshot_uri, clip_uri = evidence_uris(settings.frame_store_uri, "cam-1", incident)
    open_frame_store(settings.frame_store_uri).put_object(clip_uri, CLIP)
    app = create_app(settings, incident_store=AuditDown([incident_row(incident, clip_uri=clip_uri)]), kafka=False)
    refused = signed_in(app, "vera").get(f"/api/incidents/{incident}/clip")
    assert refused.status_code == 503 and "audit" in refused.json()["detail"] and CLIP not in refused.content
