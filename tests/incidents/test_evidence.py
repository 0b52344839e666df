"""Incident evidence (`vigil/evidence.py`, `services/evidence`, the frame store's evidence objects and pins), on real
frames of the sample car footage sampled at 5 fps: the clip plays back as H.264 for its real duration, the snapshot
shows the involved boxes, corrupt frames are skipped, retention keeps pinned frames; the service waits for the
post-roll, writes short clips when a camera goes quiet, skips replays, resumes from its pins, and (on the real broker)
writes both files to the URIs `evidence_uris` gives."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from services.evidence.service import EvidenceService, EvidenceSettings, WriteEvidence
from tests.conftest import CAR_VIDEO, isolated_settings
from vigil.evidence import CorruptFrame, NoFrames, draw_snapshot, evidence_uris, write_clip
from vigil.framestore import LocalFrameStore, Pin, object_uri, open_frame_store
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import Incoming
from vigil.topics import DETECTIONS, FRAMES, INCIDENTS

T0 = 1_700_000_000_000  # capture time of the first sampled frame
INTERVAL_MS = 200  # 5 fps
CAR_BOX = [300.0, 150.0, 420.0, 260.0]  # a box drawn on every frame, as if the tracker had track 7 there


@pytest.fixture(scope="module")
def car_jpegs() -> list[bytes]:
    """The first 30 s of the car footage sampled at 5 fps, JPEG-encoded as ingest stores them."""
    jpegs, next_s = [], 0.0
    with av.open(str(CAR_VIDEO)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time + 1e-6 < next_s:
                continue
            next_s += INTERVAL_MS / 1000
            jpegs.append(cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
            if len(jpegs) == 150:
                break
    return jpegs


def decode_clip(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [frame.time for frame in container.decode(stream)]
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt, "frames": len(pts),
                "pts": pts, "duration_s": float(stream.duration * stream.time_base),
                "size": (stream.codec_context.width, stream.codec_context.height)}


def put_frames(store, camera_id: str, jpegs: list[bytes], start_ms: int = T0) -> list[dict]:
    """Store the frames as ingest does; returns their FrameRefs."""
    refs = []
    for sequence, jpeg in enumerate(jpegs):
        ts = start_ms + sequence * INTERVAL_MS
        uri = store.put(camera_id, sequence, ts, jpeg, "jpg")
        refs.append({"frame_id": f"{camera_id}:{sequence}:{ts}", "camera_id": camera_id, "capture_ts_ms": ts,
                     "sequence": sequence, "width": 768, "height": 432, "encoding": "jpeg", "uri": uri,
                     "ingest_ts_ms": ts, "trace_context": {}})
    return refs


def detections_of(ref: dict, track_id: int = 7) -> dict:
    return {"batch_id": ref["frame_id"], "frame": ref, "model_name": "test", "model_version": "1", "xyxy": CAR_BOX,
            "class_id": [2], "confidence": [0.9], "track_id": [track_id], "inference_ts_ms": ref["capture_ts_ms"],
            "ended_track_ids": []}


def incident(camera_id: str, opened_ms: int, revision: int = 1, state: str = "open", track_ids=(7,),
             frame_store: str = "", kind: str = "stopped_vehicle") -> dict:
    incident_id = f"{camera_id}:{kind}:{opened_ms}"
    snapshot_uri, clip_uri = evidence_uris(frame_store, camera_id, incident_id) if frame_store else ("", "")
    return {"incident_id": incident_id, "revision": revision, "camera_id": camera_id, "kind": kind, "state": state,
            "severity": "medium", "zones": ["bay"], "track_ids": list(track_ids), "event_ids": [f"{incident_id}:e1"],
            "opened_ms": opened_ms, "updated_ms": opened_ms + 2000 * revision,
            "cleared_ms": opened_ms + 30_000 if state == "cleared" else None, "score": 8.0, "threshold": 6.0,
            "snapshot_uri": snapshot_uri, "clip_uri": clip_uri, "detection_suspended": False,
            "emitted_ts_ms": opened_ms + 7000}


class Message:
    def topic(self):
        return "test"

    def partition(self):
        return 0

    def offset(self):
        return 0

    def key(self):
        return b"cam"

    def value(self):
        return b""


def incoming(record_type: str, record: dict) -> Incoming:
    topic = {"FrameRef": FRAMES, "DetectionBatch": DETECTIONS, "Incident": INCIDENTS}[record_type]
    return Incoming(topic, record_type, record, Message())


# --- pure functions ------------------------------------------------------------------------------------------------

def test_evidence_uris_are_deterministic_safe_and_where_the_stores_put_them(tmp_path):
    incident_id = "cam-1:stopped_vehicle:1700000012000"
    snapshot, clip = evidence_uris(str(tmp_path / "frames"), "cam-1", incident_id)
    assert (snapshot, clip) == evidence_uris((tmp_path / "frames").as_uri(), "cam-1", incident_id)
    assert snapshot.endswith(".jpg") and clip.endswith(".mp4") and snapshot[:-4] == clip[:-4]
    name = snapshot.rsplit("/", 1)[-1]
    assert ":" not in name and name.startswith("cam-1_stopped_vehicle_1700000012000-")
    assert snapshot.startswith((tmp_path / "frames" / "_evidence" / "cam-1").resolve().as_uri() + "/")
    assert evidence_uris(str(tmp_path), "cam-1", "cam-1_stopped:vehicle:1")[0] != \
        evidence_uris(str(tmp_path), "cam-1", "cam-1:stopped_vehicle:1")[0], "ids differing in ':' stay apart"

    store = open_frame_store(str(tmp_path / "frames"))
    assert store.put_object(snapshot, b"jpeg") == snapshot and store.get(snapshot) == b"jpeg" and store.exists(snapshot)
    assert not store.exists(clip)
    with pytest.raises(ValueError):
        store.put_object((tmp_path / "elsewhere.jpg").as_uri(), b"x")
    with pytest.raises(ValueError):
        store.put_object("../escape.jpg", b"x")

    s3_snapshot, s3_clip = evidence_uris("s3://vigil-frames/site-a/?endpoint=http://127.0.0.1:8333", "cam-1", incident_id)
    assert s3_snapshot == f"s3://vigil-frames/site-a/_evidence/cam-1/{name}"
    assert s3_clip == object_uri("s3://vigil-frames/site-a", f"_evidence/cam-1/{name[:-4]}.mp4")


def test_clip_is_h264_and_plays_for_the_real_duration_at_5_fps(car_jpegs, tmp_path):
    frames = [(T0 + i * INTERVAL_MS, jpeg) for i, jpeg in enumerate(car_jpegs[:100])]
    clip = write_clip(frames)
    assert clip.frames == 100 and clip.skipped == 0 and clip.codec == "libx264"
    played = decode_clip(clip.data, tmp_path)
    assert played["codec"] == "h264" and played["pix_fmt"] == "yuv420p" and played["size"] == (768, 432)
    assert played["frames"] == 100
    assert played["duration_s"] == pytest.approx(20.0, abs=0.3), "5 fps sampled frames play in real time"
    assert np.allclose(np.diff(played["pts"]), 0.2, atol=0.01), "presentation times are the capture times"
    assert clip.data.find(b"moov") < clip.data.find(b"mdat"), "faststart: the index comes first"


def test_clip_follows_uneven_capture_times(car_jpegs, tmp_path):
    # a camera that stalled for 3 s: the gap is in the clip, not squeezed out
    times = [T0 + i * INTERVAL_MS for i in range(20)] + [T0 + 7000 + i * INTERVAL_MS for i in range(20)]
    clip = write_clip(list(zip(times, car_jpegs[:40])))
    played = decode_clip(clip.data, tmp_path)
    assert played["frames"] == 40 and played["pts"][20] - played["pts"][19] == pytest.approx(3.2, abs=0.01)
    assert played["duration_s"] == pytest.approx(11.0, abs=0.3)


def test_corrupt_and_empty_frames_are_skipped_and_counted(car_jpegs, tmp_path):
    frames = [(T0 + i * INTERVAL_MS, jpeg) for i, jpeg in enumerate(car_jpegs[:30])]
    frames[3] = (frames[3][0], b"")
    frames[10] = (frames[10][0], car_jpegs[10][:300])  # truncated
    frames[20] = (frames[20][0], b"not a jpeg at all")
    clip = write_clip(frames)
    assert (clip.frames, clip.skipped) == (27, 3)
    assert decode_clip(clip.data, tmp_path)["frames"] == 27
    with pytest.raises(NoFrames):
        write_clip([(T0, b""), (T0 + 200, b"junk")])


def test_snapshot_draws_the_boxes_and_leaves_the_rest(car_jpegs):
    raw = cv2.imdecode(np.frombuffer(car_jpegs[50], np.uint8), cv2.IMREAD_COLOR)
    snapshot = draw_snapshot(car_jpegs[50], [CAR_BOX], ["car #7"])
    drawn = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == raw.shape
    difference = np.abs(drawn.astype(int) - raw.astype(int)).sum(axis=2)
    x1, y1, _, y2 = (int(v) for v in CAR_BOX)
    assert difference[y1 + 10:y2 - 10, x1 - 1:x1 + 2].mean() > 100, "the box's left edge is drawn"
    assert difference[y1 - 30:y1, x1:x1 + 60].mean() > 100, "the label is drawn above the box"
    assert difference[:100, 600:].mean() < 15, "far from the box the frame is the frame (JPEG noise only)"
    assert draw_snapshot(car_jpegs[50], [], []) != snapshot
    with pytest.raises(CorruptFrame):
        draw_snapshot(b"", [CAR_BOX], ["car #7"])


# --- retention pins -------------------------------------------------------------------------------------------------

def test_retention_keeps_pinned_frames_and_evidence_and_deletes_the_rest(tmp_path):
    store = LocalFrameStore(tmp_path / "frames")
    hour = 3_600_000
    old = [store.put("cam-1", i, T0 + i * 60_000, b"f", "jpg") for i in range(180)]  # 3 hours, one a minute
    other = store.put("cam-2", 0, T0 + 30 * 60_000, b"f", "jpg")
    snapshot, _ = evidence_uris(store.root.as_uri(), "cam-1", "cam-1:wrong_way:1")
    store.put_object(snapshot, b"evidence")
    store.pin(Pin("cam-1:wrong_way:1", "cam-1", T0 + 20 * 60_000, T0 + 70 * 60_000, int(time.time() * 1000) + hour))
    store.pin(Pin("expired", "cam-1", T0, T0 + 180 * 60_000, int(time.time() * 1000) - 1))

    removed = store.delete_older_than(T0 + 200 * 60_000)
    kept = [uri for uri in old if Path(uri.removeprefix("file://")).exists()]
    assert kept == old[20:71], "the pinned minutes 20..70 stay, across two hour folders"
    assert removed == 180 - 51 + 1 and not Path(other.removeprefix("file://")).exists(), "a pin is per camera"
    assert store.get(snapshot) == b"evidence", "evidence is not a frame"
    assert [pin.pin_id for pin in store.pins()] == ["cam-1:wrong_way:1"], "the expired pin is gone"
    assert [ts for ts, _ in store.frames_between("cam-1", T0 + 60 * 60_000, T0 + 65 * 60_000)] == \
        [T0 + m * 60_000 for m in range(60, 66)]

    store.unpin("cam-1:wrong_way:1")
    assert store.delete_older_than(T0 + 200 * 60_000) == 51 and store.pins() == []
    assert store.exists(snapshot)


# --- the service's handler, without Kafka ---------------------------------------------------------------------------

def make_handler(tmp_path, **overrides) -> tuple[WriteEvidence, LocalFrameStore, EvidenceSettings]:
    settings = EvidenceSettings(data_dir=tmp_path, **overrides)
    store = open_frame_store(settings.frame_store_uri)
    return WriteEvidence(settings, store), store, settings


def test_the_service_waits_for_the_post_roll_then_writes_clip_and_snapshot(car_jpegs, tmp_path):
    handler, store, settings = make_handler(tmp_path)
    refs = put_frames(store, "cam", car_jpegs[:150])
    opened = T0 + 12_000
    record = incident("cam", opened, frame_store=settings.frame_store_uri)
    stop = threading.Event()
    # frames and boxes up to 15 s, then the incident: it waits for the post-roll (22 s)
    assert handler.handle([incoming("DetectionBatch", detections_of(ref)) for ref in refs[:75]], stop)
    assert handler.handle([incoming("Incident", record)], stop)
    assert handler.stats()["pending"] == 1 and not store.exists(record["clip_uri"])
    assert [pin.pin_id for pin in store.pins()] == [record["incident_id"]]
    assert store.pins()[0].from_ms == opened - 10_000 and store.pins()[0].to_ms == opened + 10_000
    assert handler.handle([incoming("FrameRef", ref) for ref in refs[75:]], stop)
    assert handler.stats()["pending"] == 1, "frames alone do not finish it: the boxes of the post-roll are missing"
    assert handler.handle([incoming("DetectionBatch", detections_of(ref)) for ref in refs[75:]], stop)
    assert handler.stats()["pending"] == 0 and handler.stats()["evidence_written"] == 1

    played = decode_clip(store.get(record["clip_uri"]), tmp_path)
    assert played["codec"] == "h264" and played["frames"] == 101
    assert played["duration_s"] == pytest.approx(20.2, abs=0.3)
    snapshot = cv2.imdecode(np.frombuffer(store.get(record["snapshot_uri"]), np.uint8), cv2.IMREAD_COLOR)
    raw = cv2.imdecode(np.frombuffer(car_jpegs[60], np.uint8), cv2.IMREAD_COLOR)  # the frame at opened_ms
    assert np.abs(snapshot.astype(int) - raw.astype(int)).sum(axis=2)[160:250, 299:302].mean() > 100

    # still open: the pin stays (extended by the update) until the incident is cleared
    assert handler.handle([incoming("Incident", incident("cam", opened, revision=2, state="updated"))], stop)
    assert store.pins()[0].to_ms == opened + 4000 + 10_000
    assert handler.handle([incoming("Incident", incident("cam", opened, revision=3, state="cleared"))], stop)
    assert store.pins() == []

    # a replay of the opening record finds the files and writes nothing
    replayed = WriteEvidence(settings, store)
    assert replayed.handle([incoming("Incident", record)], stop)
    assert replayed.stats()["skipped_existing"] == 1 and replayed.stats()["pending"] == 0 and store.pins() == []


def test_a_quiet_camera_gets_a_shorter_clip_and_corrupt_frames_are_skipped(car_jpegs, tmp_path, caplog):
    handler, store, settings = make_handler(tmp_path, evidence_quiet_s=0.3)
    jpegs = list(car_jpegs[:80])
    jpegs[40] = b""  # a zero-byte frame in the store
    refs = put_frames(store, "cam", jpegs)  # the stream ends at 15.8 s
    record = incident("cam", T0 + 12_000, frame_store=settings.frame_store_uri)
    stop = threading.Event()
    assert handler.handle([incoming("DetectionBatch", detections_of(ref)) for ref in refs], stop)
    assert handler.handle([incoming("Incident", record)], stop)
    handler.idle()
    assert handler.stats()["pending"] == 1, "not quiet yet"
    time.sleep(0.4)
    handler.idle()
    stats = handler.stats()
    assert stats["pending"] == 0 and stats["clips_short"] == 1 and stats["corrupt_frames"] == 1
    played = decode_clip(store.get(record["clip_uri"]), tmp_path)
    assert played["frames"] == 69 and played["duration_s"] == pytest.approx(14.0, abs=0.3)  # 2.0 .. 15.8 s, one gone
    assert "the camera sent nothing" in caplog.text


def test_a_restarted_service_finishes_incidents_from_their_pins(car_jpegs, tmp_path, caplog):
    handler, store, settings = make_handler(tmp_path, evidence_quiet_s=0.2)
    put_frames(store, "cam", car_jpegs[:150])
    record = incident("cam", T0 + 12_000, frame_store=settings.frame_store_uri)
    assert handler.handle([incoming("Incident", record)], threading.Event())
    handler.close()  # stopped before any frame arrived; the incident's offset was committed
    restarted = WriteEvidence(settings, store)
    assert restarted.stats()["pending"] == 1
    time.sleep(0.3)
    restarted.idle()
    assert restarted.stats()["evidence_written"] == 1
    assert decode_clip(store.get(record["clip_uri"]), tmp_path)["frames"] == 101, "frames come from the store"
    assert store.exists(record["snapshot_uri"]) and "were not seen" in caplog.text


# --- the service on the real broker ---------------------------------------------------------------------------------

def test_the_service_writes_evidence_from_the_topics(stack, car_jpegs, tmp_path):
    settings = isolated_settings(stack, EvidenceSettings, evidence_quiet_s=30.0)
    camera_id = f"ev-{uuid.uuid4().hex[:6]}"
    store = open_frame_store(settings.frame_store_uri)
    refs = put_frames(store, camera_id, car_jpegs[:150])
    opened = T0 + 12_000
    record = incident(camera_id, opened)
    record["snapshot_uri"], record["clip_uri"] = evidence_uris(settings.frame_store, camera_id, record["incident_id"])
    producer = KafkaOutput(settings)
    for ref in refs:
        producer.write(FRAMES, "FrameRef", ref, key=camera_id.encode())
    producer.write(INCIDENTS, "Incident", record, key=camera_id.encode())
    for ref in refs:
        producer.write(DETECTIONS, "DetectionBatch", detections_of(ref), key=camera_id.encode())
    assert producer.flush()

    service, stop = EvidenceService(settings), threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not store.exists(record["snapshot_uri"]):
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    assert store.exists(record["snapshot_uri"]) and store.exists(record["clip_uri"])
    played = decode_clip(store.get(record["clip_uri"]), tmp_path)
    assert played["codec"] == "h264" and played["frames"] == 101 and played["duration_s"] == pytest.approx(20.2, abs=0.3)
    assert cv2.imdecode(np.frombuffer(store.get(record["snapshot_uri"]), np.uint8), cv2.IMREAD_COLOR).shape == (432, 768, 3)
    stats = service.evidence.stats()
    assert stats["evidence_written"] == 1 and stats["clips_short"] == 0 and stats["pending"] == 0
    assert [pin.pin_id for pin in store.pins()] == [record["incident_id"]], "open: its frames stay pinned"
