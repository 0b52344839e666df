"""Helpers of the console tests: settings on a private data directory, users, and an in-memory incident store with
the methods of services.console.incidents.ClickHouseIncidents."""

from __future__ import annotations

import copy

from services.console.settings import ConsoleSettings
from services.console.users import UserStore

PASSWORDS = {"vera": "viewer-pass-1", "otto": "operator-pass-1", "ada": "admin-pass-123"}
ROLES = {"vera": "viewer", "otto": "operator", "ada": "admin"}


def console_settings(data_dir, **overrides) -> ConsoleSettings:
    return ConsoleSettings(data_dir=data_dir, console_secret_key="k" * 40, **overrides)


def add_users(settings: ConsoleSettings) -> UserStore:
    store = UserStore(settings.users_path)
    for name, role in ROLES.items():
        store.add(name, role, PASSWORDS[name], replace=True)
    return store


def incident_row(incident_id="cam-1:stopped_vehicle:1700000000000", camera_id="cam-1", kind="stopped_vehicle",
                 snapshot_uri="", clip_uri="", **extra) -> dict:
    import datetime

    opened = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
    return {"incident_id": incident_id, "state": "open", "verdict": "", "severity": "medium", "camera_id": camera_id,
            "kind": kind, "zones": ["bay"], "track_ids": [7], "opened": opened, "cleared": None, "updated": opened,
            "revision": 1, "snapshot_uri": snapshot_uri, "clip_uri": clip_uri, "score": 8.0, "threshold": 6.0,
            "detection_suspended": False, "verdict_reason": None, "verdict_actor": None, "verdict_decided": None,
            **extra}


class MemoryIncidents:
    def __init__(self, rows: list[dict]):
        self.rows = {row["incident_id"]: row for row in rows}
        self.rejections: list[dict] = []
        self.clip_views: list[dict] = []

    def record_clip_view(self, view):
        self.clip_views.append(view)

    def queue(self, camera=None, kind=None, state=None, limit=100, cameras=None):
        rows = [r for r in self.rows.values() if (not camera or r["camera_id"] == camera)
                and (not kind or r["kind"] == kind) and (not state or r["state"] == state)
                and (cameras is None or r["camera_id"] in cameras)]
        return copy.deepcopy(rows[:limit])

    def filters(self):
        return {"cameras": sorted({r["camera_id"] for r in self.rows.values()}),
                "kinds": sorted({r["kind"] for r in self.rows.values()}), "states": ["open", "updated", "cleared"]}

    def incident(self, incident_id):
        row = self.rows.get(incident_id)
        return None if row is None else {**copy.deepcopy(row), "revisions": [], "verdicts": []}

    def noisiest(self):
        return [{"kind": "stopped_vehicle", "camera_id": "cam-1", "zone": "bay", "rejected": 2,
                 "reasons": ["shadow", "parked legally"]}]

    def tracks(self, camera_id, track_ids, from_ms, to_ms):
        return [{"track_id": 7, "class_id": 2, "points": [[from_ms + 100, 10, 10, 50, 50]]}]

    def first_frame_ms(self, camera_id, from_ms, to_ms):
        return from_ms

    def frame_size(self, camera_id, around_ms):
        return (768, 432)
