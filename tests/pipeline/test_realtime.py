"""The real-time path on real footage through the real broker, tritonserver and ClickHouse store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

from services.ingest.service import run as run_ingest
from tests.conftest import CAR_VIDEO, running, stream_car, wait_for_rows
from vigil.avro_codec import AvroCodec
from vigil.cameras import Camera
from vigil.kafka_io import make_consumer, make_producer
from vigil.store.client import connect

pytestmark = pytest.mark.slow  # starts real servers or Flink


@pytest.fixture(scope="module")
def car_run(stack, tmp_path_factory):
    """The car video through ingest → infer → sink once; returns (settings, camera id, frames published)."""
    from tests.conftest import IngestSettings, isolated_settings

    settings = isolated_settings(stack, IngestSettings)
    camera_id = f"car-{uuid.uuid4().hex[:6]}"
    with running(settings):
        published, _ = stream_car(settings, camera_id, fps=5)
    return settings, camera_id, published


def test_every_published_frame_yields_exactly_one_detection_row(car_run):
    settings, camera_id, published = car_run
    assert published == 151  # 377 frames at 12.5 fps sampled at 5 fps
    client = connect(settings)
    rows, distinct = client.query("SELECT count(), uniqExact(frame_id) FROM detections WHERE camera_id = {c:String}",
                                  parameters={"c": camera_id}).result_rows[0]
    assert rows == distinct == published
    frames = client.query("SELECT count() FROM frames FINAL WHERE camera_id = {c:String}", parameters={"c": camera_id}).result_rows[0][0]
    assert frames == published
    sequences = client.query("SELECT groupArray(sequence) FROM (SELECT sequence FROM detections FINAL "
                             "WHERE camera_id = {c:String} ORDER BY sequence)", parameters={"c": camera_id}).result_rows[0][0]
    assert sequences == list(range(published))


def test_detections_find_the_cars(car_run):
    settings, camera_id, _ = car_run
    classes = connect(settings).query("SELECT groupArray(cls) FROM detections FINAL ARRAY JOIN class_id AS cls "
                                      "WHERE camera_id = {c:String}", parameters={"c": camera_id}).result_rows[0][0]
    assert len(classes) >= 30 and np.mean(np.array(classes) == 2) > 0.7


def test_track_id_is_stable_across_consecutive_frames_of_a_moving_car(car_run):
    settings, camera_id, _ = car_run
    rows = connect(settings).query(
        "SELECT sequence, tid, (bx1 + bx2) / 2, (by1 + by2) / 2 FROM detections FINAL "
        "ARRAY JOIN track_id AS tid, class_id AS cls, x1 AS bx1, x2 AS bx2, y1 AS by1, y2 AS by2 "
        "WHERE camera_id = {c:String} AND tid >= 0 AND cls = 2 ORDER BY sequence", parameters={"c": camera_id}).result_rows
    by_track: dict[int, list] = {}
    for sequence, track_id, cx, cy in rows:
        by_track.setdefault(track_id, []).append((sequence, cx, cy))
    longest = max(by_track.values(), key=len)
    sequences = [s for s, _, _ in longest]
    assert len(longest) >= 10, "a car stays one track for at least 10 sampled frames (2 s)"
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), "no gaps: consecutive frames"
    travelled = np.hypot(longest[-1][1] - longest[0][1], longest[-1][2] - longest[0][2])
    assert travelled > 150, "the tracked car really moved across the image"


def test_killed_sink_restarted_produces_no_duplicates(pipeline_settings):
    settings = pipeline_settings
    camera_id = f"crash-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **{f"VIGIL_{k.upper()}": str(v) for k, v in {
        "data_dir": settings.data_dir, "kafka_bootstrap": settings.kafka_bootstrap,
        "clickhouse_dsn": settings.clickhouse_dsn, "topic_namespace": settings.topic_namespace,
        "sink_max_wait_ms": 100, "sink_max_rows": 20}.items()}}
    sql = "SELECT count() FROM detections FINAL WHERE camera_id = {c:String}"
    with running(settings, sink=False):
        sink = subprocess.Popen([sys.executable, "-m", "services.sink"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = {}
        # paced at 3x real time (~10 s), so the kill lands while frames are still flowing
        camera = Camera(id=camera_id, url=str(CAR_VIDEO), fps=5, pace="native", speed=3)
        ingest = threading.Thread(target=lambda: summary.update(run_ingest([camera], settings, threading.Event())))
        ingest.start()
        try:
            assert wait_for_rows(settings, sql, 20, parameters={"c": camera_id}) >= 20
            sink.send_signal(signal.SIGKILL)  # mid-stream, between inserts and commits
            sink.wait(10)
            partial = connect(settings).query(sql, parameters={"c": camera_id}).result_rows[0][0]
            sink = subprocess.Popen([sys.executable, "-m", "services.sink"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ingest.join(120)
            published = summary[camera_id]["frames_published"]
            assert wait_for_rows(settings, sql, published, parameters={"c": camera_id}) == published
        finally:
            sink.terminate()
            sink.wait(30)
    client = connect(settings)
    client.command("OPTIMIZE TABLE detections FINAL")
    rows, distinct = client.query("SELECT count(), uniqExact(frame_id) FROM detections WHERE camera_id = {c:String}",
                                  parameters={"c": camera_id}).result_rows[0]
    assert partial < published, "the kill happened mid-stream"
    assert rows == distinct == published


def test_corrupt_file_and_unreachable_rtsp_report_status_without_crashing(pipeline_settings, tmp_path):
    settings = pipeline_settings
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(200_000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(CAR_VIDEO.read_bytes()[:600_000])
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    cameras = [Camera(id="bad-file", url=str(corrupt), fps=5, pace="fast"),
               Camera(id="half-file", url=str(truncated), fps=5, pace="fast"),
               Camera(id="dead-rtsp", url=f"rtsp://127.0.0.1:{dead_port}/stream", fps=5)]
    summary = run_ingest(cameras, settings, threading.Event(), max_seconds=6)
    assert summary["bad-file"]["state"] == "OFFLINE" and summary["bad-file"]["reconnects"] >= 2
    assert summary["dead-rtsp"]["state"] == "OFFLINE" and summary["dead-rtsp"]["reconnects"] >= 2
    assert summary["half-file"]["frames_published"] > 0 and summary["half-file"]["state"] == "ENDED"

    codec = AvroCodec()
    consumer = make_consumer(settings, f"status-{uuid.uuid4().hex[:6]}", [settings.topic("camera-status.v1")])
    statuses = []
    for _ in range(40):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            statuses.append(codec.decode(message.value(), expected="CameraStatus"))
    consumer.close()
    by_camera = {}
    for status in statuses:
        by_camera.setdefault(status["camera_id"], []).append(status)
    assert any(s["state"] == "OFFLINE" and "cannot open" in (s["message"] or "") for s in by_camera["bad-file"])
    assert any(s["state"] == "OFFLINE" and "Connection refused" in (s["message"] or "") for s in by_camera["dead-rtsp"])
    assert by_camera["half-file"][-1]["state"] == "ENDED"


def test_malformed_frame_message_goes_to_dead_letters_with_reason(pipeline_settings):
    settings = pipeline_settings
    producer = make_producer(settings)
    producer.produce(settings.topic("frames.v1"), key=b"cam-x", value=b"\x00\x01garbage that is not avro")
    codec = AvroCodec()
    wrong_type = codec.encode("CameraStatus", dict(status_id="s", camera_id="cam-x", ts_ms=1, state="ONLINE",
                                                   frames_decoded=0, frames_published=0, decode_errors=0, reconnects=0,
                                                   actual_fps=0.0, message=None))
    producer.produce(settings.topic("frames.v1"), key=b"cam-x", value=wrong_type)
    assert producer.flush(10) == 0
    consumer = make_consumer(settings, f"dlq-{uuid.uuid4().hex[:6]}", [settings.topic("deadletter.v1")])
    letters = []
    with running(settings, sink=True):
        for _ in range(120):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                letters.append(codec.decode(message.value(), expected="DeadLetter"))
            if len(letters) >= 4:
                break
        stored = wait_for_rows(settings, "SELECT count() FROM dead_letters FINAL WHERE source_topic = {t:String}", 4,
                               timeout_s=60, parameters={"t": settings.topic("frames.v1")})
    consumer.close()
    assert {letter["source_topic"] for letter in letters} == {settings.topic("frames.v1")}
    # Both consumers of frames.v1 (infer, and the sink that stores frames) reject both messages, each saying why.
    for service in ("infer", "sink"):
        reasons = [letter["reason"] for letter in letters if letter["service"] == service]
        assert len(reasons) == 2 and any("expected a FrameRef" in r for r in reasons), (service, reasons)
        assert any("not an Avro message" in r for r in reasons)
    assert all(letter["value"] for letter in letters), "the original bytes are kept"
    assert stored == 4, "the sink stores dead letters for operators to query"
