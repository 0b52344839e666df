"""The re-ID embed service (`services/reid/service.py`): its own consumer of detections.v1, off the detect → publish
path. Without servers: tracks end where infer's tracker ended them (`ended_track_ids` on the record), on silence,
and resume if they go on; unreadable frames are dead-lettered. On the real stack: detections reach detections.v1 and
ClickHouse while the embed service is not running at all, and every track is summarised once it runs."""

from __future__ import annotations

import threading
import time
import uuid

import cv2
import numpy as np
import pytest

from services.reid.service import EmbedTracks, ReidEmbedSettings
from services.reid.stage import ReidStage
from vigil.detections import Detections
from vigil.framestore import LocalFrameStore
from vigil.runtime import DeadLetters, Incoming
from vigil.topics import DEADLETTER, DETECTIONS, TRACKS


class Recorded:
    """The Kafka output, kept in a list."""

    def __init__(self):
        self.records = []

    def write(self, topic, record_type, record, key=None, timestamp_ms=None):
        self.records.append((topic, record_type, record))

    def of(self, record_type):
        return [r for _, t, r in self.records if t == record_type]


class Embedder:
    name = "fake:1"

    def embed(self, crops):
        return np.tile(np.array([1.0, 0.0], np.float32), (len(crops), 1))


class Message:
    def __init__(self, offset):
        self._offset = offset

    def topic(self):
        return "detections.v1"

    def partition(self):
        return 0

    def offset(self):
        return self._offset

    def key(self):
        return b"cam"

    def value(self):
        return b"original bytes"


@pytest.fixture
def service(tmp_path):
    settings = ReidEmbedSettings(data_dir=tmp_path, reid_embed_every=1)
    output, store = Recorded(), LocalFrameStore(tmp_path / "frames")
    handler = EmbedTracks(settings, ReidStage(settings, output, store, Embedder()), store,
                          DeadLetters(output, "reid-embed", settings))
    return handler, output, store


def batch_record(store, sequence, boxes, track_ids, ended=(), stored=True):
    ts = 1_700_000_000_000 + sequence * 200
    rgb = np.full((240, 320, 3), 90, np.uint8)
    uri = store.put("cam", sequence, ts, cv2.imencode(".jpg", rgb)[1].tobytes()) if stored else "file:///no/such.jpg"
    dets = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), np.zeros(len(boxes)),
                      np.array(track_ids))
    frame = {"frame_id": f"cam:{sequence}:{ts}", "camera_id": "cam", "capture_ts_ms": ts, "sequence": sequence,
             "width": 320, "height": 240, "encoding": "jpeg", "uri": uri, "ingest_ts_ms": ts, "trace_context": {}}
    record = {"batch_id": frame["frame_id"], "frame": frame, "model_name": "m", "model_version": "1",
              "inference_ts_ms": ts, "ended_track_ids": list(ended), **dets.to_record_fields()}
    return Incoming(DETECTIONS, "DetectionBatch", record, Message(sequence))


def test_a_track_ends_on_the_frame_where_infers_tracker_ended_it(service):
    handler, output, store = service
    box = [[40, 40, 100, 160]]
    for sequence in range(4):
        assert handler.handle([batch_record(store, sequence, box, [7])], threading.Event())
    assert output.of("TrackSummary") == [], "a live track is not summarised before its interval"
    assert handler.handle([batch_record(store, 4, [], [], ended=[7])], threading.Event())
    (summary,) = output.of("TrackSummary")
    assert summary["final"] and summary["track_id"] == 7 and summary["detections"] == 4
    assert summary["embedding_samples"] == 4 and summary["embedder"] == "fake:1" and summary["best_crop_uri"]
    assert output.of("TrackProgress")[0]["camera_id"] == "cam", "heartbeats advance the re-ID job's event time"
    assert handler.stats()["frames_read"] == 4, "a frame without tracked boxes is not read from the store"


def test_a_silent_camera_has_its_tracks_ended_and_a_track_that_goes_on_resumes(service):
    handler, output, store = service
    box = [[40, 40, 100, 160]]
    assert handler.handle([batch_record(store, 0, box, [3]), batch_record(store, 1, box, [3])], threading.Event())
    assert handler.end_idle_tracks(idle_ms=0) == 1
    first = output.of("TrackSummary")[0]
    assert first["final"] and first["sequence"] == 0
    # infer was only stalled: the same track goes on and is summarised as one track, numbered on
    assert handler.handle([batch_record(store, 2, box, [3]), batch_record(store, 3, [], [], ended=[3])], threading.Event())
    second = output.of("TrackSummary")[1]
    assert second["final"] and second["sequence"] == 1 and second["detections"] == 3
    assert second["first_seen_ms"] == first["first_seen_ms"]


def test_an_unreadable_frame_is_dead_lettered_and_its_ended_tracks_still_end(service):
    handler, output, store = service
    box = [[40, 40, 100, 160]]
    assert handler.handle([batch_record(store, 0, box, [5]), batch_record(store, 1, box, [5], ended=[], stored=False),
                           batch_record(store, 2, box, [9], ended=[5], stored=False)], threading.Event())
    letters = [r for topic, _, r in output.records if topic is DEADLETTER]
    assert [letter["source_offset"] for letter in letters] == [1, 2]
    assert all("frame unreadable" in letter["reason"] and letter["service"] == "reid-embed" for letter in letters)
    (summary,) = output.of("TrackSummary")
    assert summary["track_id"] == 5 and summary["final"] and summary["detections"] == 1
    assert {topic for topic, _, _ in output.records} == {DEADLETTER, TRACKS}


def test_the_committed_offset_is_held_at_the_first_record_of_the_oldest_open_track(service):
    """What a SIGKILL would lose (open tracks live in memory) is re-read on restart: the runtime commits no further
    than the first record of the oldest open track, and moves on once it ended."""
    handler, output, store = service
    box, two = [[40, 40, 100, 160]], [[40, 40, 100, 160], [150, 40, 210, 160]]
    assert handler.commit_floor() == {}, "nothing open: commit everything handled"
    assert handler.handle([batch_record(store, 0, [], []), batch_record(store, 1, box, [3])], threading.Event())
    assert handler.commit_floor() == {("detections.v1", 0): 1}
    assert handler.handle([batch_record(store, 2, two, [3, 4]), batch_record(store, 3, two, [3, 4])], threading.Event())
    assert handler.commit_floor() == {("detections.v1", 0): 1}, "the oldest open track holds it"
    assert handler.handle([batch_record(store, 4, box, [4], ended=[3])], threading.Event())
    assert handler.commit_floor() == {("detections.v1", 0): 2}, "track 3 ended: held at track 4's first record"
    assert handler.handle([batch_record(store, 5, [], [], ended=[4])], threading.Event())
    assert handler.commit_floor() == {}
    assert [s["track_id"] for s in output.of("TrackSummary")] == [3, 4]


def test_a_track_older_than_the_replay_limit_no_longer_holds_the_offset(tmp_path):
    settings = ReidEmbedSettings(data_dir=tmp_path, reid_embed_every=1, reid_replay_max_s=1.0)
    output, store = Recorded(), LocalFrameStore(tmp_path / "frames")
    handler = EmbedTracks(settings, ReidStage(settings, output, store, Embedder()), store,
                          DeadLetters(output, "reid-embed", settings))
    box = [[40, 40, 100, 160]]
    assert handler.handle([batch_record(store, i, box, [3]) for i in range(5)], threading.Event())  # 0.8 s
    assert handler.commit_floor() == {("detections.v1", 0): 0}
    assert handler.handle([batch_record(store, 5, box, [3]), batch_record(store, 6, box, [3])], threading.Event())
    assert handler.commit_floor() == {}, "capture time 1.2 s past the track's start: past reid_replay_max_s"


def test_inconsistent_detections_are_dead_lettered(service):
    handler, output, store = service
    incoming = batch_record(store, 0, [[40, 40, 100, 160]], [5])
    incoming.record["track_id"] = [5, 6]  # two ids for one box
    assert handler.handle([incoming], threading.Event())
    (letter,) = [r for topic, _, r in output.records if topic is DEADLETTER]
    assert "inconsistent detections" in letter["reason"]


@pytest.mark.slow
def test_detections_do_not_wait_for_the_embed_service_and_nothing_is_lost(pipeline_settings):
    """Detections reach detections.v1 (and ClickHouse) with the embed service not running; started afterwards, it
    summarises every confirmed track from what infer published."""
    from services.ingest.service import run as run_ingest
    from tests.conftest import CAR_VIDEO, running, wait_for_rows
    from vigil.avro_codec import AvroCodec
    from vigil.cameras import Camera
    from vigil.kafka_io import make_consumer
    from vigil.store.client import connect

    settings = pipeline_settings
    camera_id = f"car-decoupled-{uuid.uuid4().hex[:6]}"
    detections_sql = "SELECT count() FROM detections FINAL WHERE camera_id = {c:String}"
    with running(settings, reid=False):
        summary = run_ingest([Camera(id=camera_id, url=str(CAR_VIDEO), fps=5, pace="fast")], settings, threading.Event())
        published = summary[camera_id]["frames_published"]
        assert wait_for_rows(settings, detections_sql, published, parameters={"c": camera_id}) == published

    codec = AvroCodec()
    consumer = make_consumer(settings, f"check-{uuid.uuid4().hex[:6]}", [DETECTIONS.deployed(settings), TRACKS.deployed(settings)])
    batches, summaries = [], []
    deadline, quiet_until = time.monotonic() + 90, None
    try:
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            if quiet_until is None and len(batches) >= published:
                quiet_until = time.monotonic() + 3  # and a little longer: would anything be on tracks.v1?
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            record = codec.decode(message.value())
            if record.get("camera_id", record.get("frame", {}).get("camera_id")) != camera_id:
                continue
            (batches if "frame" in record else summaries).append(record)
    finally:
        consumer.close()
    assert len(batches) == published, "every frame's detections are on detections.v1 without the embed service"
    assert summaries == [], "nothing summarised the tracks yet"
    track_ids = {t for b in batches for t in b["track_id"] if t >= 0}
    ended = {t for b in batches for t in b["ended_track_ids"]}
    assert track_ids and ended and ended <= track_ids, "the tracker's ended tracks travel on the records"

    client = connect(settings)
    summaries_sql = "SELECT countIf(final) FROM track_summaries FINAL WHERE camera_id = {c:String}"
    with running(settings, infer=False, reid=True) as services:
        got = wait_for_rows(settings, summaries_sql, len(track_ids), timeout_s=240, parameters={"c": camera_id})
        stats = services["reid"].stats()
    assert got == len(track_ids), "every confirmed track gets its final summary once the embed service runs"
    embedded = client.query("SELECT groupArray(track_id), min(embedding_samples) FROM track_summaries FINAL "
                            "WHERE camera_id = {c:String}", parameters={"c": camera_id}).result_rows[0]
    assert set(embedded[0]) == track_ids and embedded[1] >= 1, "each summary carries an embedding"
    assert stats["frames"] >= published and stats["dead_letters"] == 0
