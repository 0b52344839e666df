"""`vigil erase` (vigil/erasure.py, app/erase.py) on the real store (chDB served over HTTP) and a real frame store:
a camera's period goes (frames and crops in the store, its incidents' snapshots and clips, pins, rows of every table
that holds the camera) and the report counts it; the rest of that camera and every other camera stay; a whole-camera
erasure leaves nothing of it; every table with a camera column is either erased or kept on purpose."""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid

import pytest

from tests.conftest import isolated_settings
from vigil.config import REPO_ROOT
from vigil.erasure import KEPT, TABLES, erase
from vigil.evidence import evidence_uris
from vigil.framestore import Pin, open_frame_store
from vigil.store.client import connect

HOUR = 3_600_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR  # an hour boundary (2027-01-15 08:00 UTC)
PERIOD = (T0 + HOUR, T0 + 2 * HOUR)  # the second of three hours


def at(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def seed(client, store, store_uri: str, camera: str) -> None:
    """One frame, crop and row per table and hour (T0, T0 + 1 h, T0 + 2 h, each 10 min in), one incident per hour
    with its snapshot and clip, and a pin on the middle hour."""
    for hour in range(3):
        ts = T0 + hour * HOUR + 600_000
        frame_id = f"{camera}:{ts}:{hour}"
        store.put(camera, hour, ts, b"jpeg", "jpg")
        store.put(camera, 100 + hour, ts, b"crop", "track.jpg")
        incident = f"{camera}:stopped_vehicle:{ts}"
        snapshot_uri, clip_uri = evidence_uris(store_uri, camera, incident)
        store.put_object(snapshot_uri, b"snapshot")
        store.put_object(clip_uri, b"clip")
        rows = {
            "frames": ({"frame_id": frame_id, "camera_id": camera, "capture_ts": at(ts)}),
            "detections": ({"frame_id": frame_id, "camera_id": camera, "capture_ts": at(ts)}),
            "camera_status": ({"status_id": f"{camera}:ONLINE:{ts}", "camera_id": camera, "ts": at(ts)}),
            "anomalies": ({"event_id": f"{camera}:e:{ts}", "camera_id": camera, "window_start": at(ts)}),
            "track_summaries": ({"camera_id": camera, "track_id": hour, "first_seen": at(ts),
                                 "last_seen": at(ts + 5000)}),
            "reid_matches": ({"match_id": f"{camera}:m:{ts}", "from_camera_id": "elsewhere",
                              "from_last_seen": at(ts - 9000), "to_camera_id": camera, "to_first_seen": at(ts)}),
            "traffic_bins": ({"bin_id": f"{camera}:b:{ts}", "camera_id": camera, "lane": "l1", "bin_start": at(ts)}),
            "vehicle_passages": ({"passage_id": f"{camera}:p:{ts}", "camera_id": camera, "lane": "l1", "ts": at(ts)}),
            "incidents": ({"incident_id": incident, "revision": 1, "camera_id": camera, "opened": at(ts),
                           "updated": at(ts), "snapshot_uri": snapshot_uri, "clip_uri": clip_uri}),
            "incident_verdicts": ({"verdict_id": f"{incident}:v", "incident_id": incident, "camera_id": camera,
                                   "verdict": "confirmed", "actor": "otto", "decided": at(ts + 60_000)}),
            "otel_traces": ({"Timestamp": at(ts), "TraceId": uuid.uuid4().hex, "SpanName": "ingest.frame",
                             "ServiceName": "ingest", "SpanAttributes": {"camera.id": camera}}),
        }
        for table, row in rows.items():
            client.insert(table, [list(row.values())], column_names=list(row))
    store.pin(Pin(f"{camera}:pin", camera, T0 + HOUR, T0 + HOUR + 1000, expires_ms=2 * T0))


def counts(client, camera: str) -> dict[str, int]:
    parameters = {"camera": camera, "since_ms": 0, "until_ms": 0, "incident_ids": []}
    return {table: int(client.query(f"SELECT count() FROM {table} WHERE {TABLES[table][0]}",
                                    parameters=parameters).result_rows[0][0])
            for table in TABLES if table != "traffic_rollups"}


@pytest.fixture
def erase_env(stack):
    settings = isolated_settings(stack)
    client = connect(settings)
    store = open_frame_store(settings.frame_store_uri)
    cameras = [f"erase-{uuid.uuid4().hex[:6]}", f"keep-{uuid.uuid4().hex[:6]}"]
    for camera in cameras:
        seed(client, store, settings.frame_store_uri, camera)
    return settings, client, store, cameras


def vigil_erase(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "erase", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=180, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200",
                                                       "VIGIL_CLICKHOUSE_DSN": settings.clickhouse_dsn,
                                                       "VIGIL_FRAME_STORE": settings.frame_store_uri})


def test_erase_a_period_removes_exactly_it_and_reports_the_counts(erase_env):
    settings, client, store, (camera, other) = erase_env
    before_other = counts(client, other)
    done = vigil_erase(settings, "--camera", camera, "--since", at(PERIOD[0]).isoformat(),
                       "--until", at(PERIOD[1]).isoformat())
    assert done.returncode == 0, done.stdout + done.stderr
    cells = [[cell.strip() for cell in line.split("│")[1:4]] for line in done.stdout.splitlines()
             if line.count("│") == 4]
    report = {where if what == "rows" else what: int(n) for what, where, n in cells if n.isdigit()}
    assert (report["frames"], report["re-ID crops"], report["snapshots and clips"],
            report["retention pins"]) == (1, 1, 2, 1)
    for table in counts(client, camera):
        assert report[f"ClickHouse {table}"] == 1, (table, done.stdout)
    assert report["ClickHouse traffic_rollups"] >= 1  # the 15-minute and hourly rollups of the erased bin
    assert "clip_views" in done.stdout  # said to be kept
    # what remains of the camera: the first and last hour, everywhere
    assert set(counts(client, camera).values()) == {2}
    left = [ts for ts, _ in store.frames_between(camera, T0, T0 + 3 * HOUR)]
    assert len(left) == 4 and not any(PERIOD[0] <= ts < PERIOD[1] for ts in left)
    assert len(store.evidence_keys(camera)) == 4 and not [p for p in store.pins() if p.camera_id == camera]
    # the other camera is untouched
    assert counts(client, other) == before_other and len(store.evidence_keys(other)) == 6
    assert len(store.frames_between(other, T0, T0 + 3 * HOUR)) == 6


def test_erase_a_whole_camera_and_a_dry_run(erase_env):
    settings, client, store, (camera, other) = erase_env
    dry = erase(client, settings.frame_store_uri, camera, dry_run=True)
    assert (dry.frames, dry.crops, dry.evidence, dry.pins) == (3, 3, 6, 1) and dry.rows["incidents"] == 3
    assert set(counts(client, camera).values()) == {3}  # a dry run removes nothing
    done = erase(client, settings.frame_store_uri, camera)
    assert done.total() == dry.total() and done.rows == dry.rows
    assert set(counts(client, camera).values()) == {0}
    assert store.frames_between(camera, T0, T0 + 3 * HOUR) == [] and store.evidence_keys(camera) == []
    assert set(counts(client, other).values()) == {3}
    with pytest.raises(ValueError, match="both"):
        erase(client, settings.frame_store_uri, camera, since_ms=PERIOD[0])


def test_every_table_with_a_camera_is_erased_or_kept(stack):
    client = connect(stack)
    tables = {row[0] for row in client.query(
        "SELECT DISTINCT c.table FROM system.columns AS c JOIN system.tables AS t ON c.database = t.database "
        "AND c.table = t.name WHERE c.database = currentDatabase() AND t.engine NOT IN ('View', 'MaterializedView') "
        "AND (c.name LIKE '%camera_id' OR c.name = 'SpanAttributes')").result_rows}
    assert tables, "no table with a camera column found"
    assert not tables - set(TABLES) - set(KEPT), f"tables holding a camera that erasure neither removes nor keeps: " \
                                                f"{sorted(tables - set(TABLES) - set(KEPT))}"
