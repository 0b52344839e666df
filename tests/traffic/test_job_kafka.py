"""The traffic job as deployed: a child process reading detections.v1 and camera-status.v1 from the real broker with
KafkaSource and writing traffic.v1 with KafkaSink, stored by the sink in ClickHouse. Three minutes of synthetic
traffic on two lanes at known speeds; the job is SIGKILLed after a checkpoint, the rest of the stream is produced
while it is down, and it resumes with `--restore latest`. Every vehicle is counted exactly once (replayed duplicates
share their passage id and collapse under FINAL), the per-lane minute volumes and speeds match the truth, and an
undecodable message is dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from jobs.traffic.__main__ import TrafficJobSettings
from tests.conftest import running, wait_for_rows
from tests.traffic import synthetic
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT
from vigil.kafka_io import make_consumer, make_producer
from vigil.store.client import connect
from vigil.topics import CAMERA_STATUS, DEADLETTER, DETECTIONS, TRAFFIC

pytestmark = pytest.mark.slow

CAMERA = "cam-traffic-k"
MINUTE_MS = 60_000
CAPTURE_MS = 3 * MINUTE_MS  # three complete minutes
CHECKPOINTED_MS = 50_000  # capture time produced, processed and checkpointed before the kill
KILL_AFTER_MS = 100_000  # produced before the kill (the kill comes while the job works on it); the rest while down
SPEEDS_KMH = [42.0, 55.0, 63.0, 48.0, 70.0, 37.0, 58.0]


@dataclass(frozen=True)
class Vehicle:
    track_id: int
    lane: int
    class_id: int
    speed_kmh: float
    start_ms: int

    @property
    def crossing_ms(self) -> float:
        """When it crosses its lane's count line (the line is at LINE_Y_M; drive() starts at 50 m)."""
        return self.start_ms + (50.0 - synthetic.LINE_Y_M) / (self.speed_kmh / 3.6) * 1000

    @property
    def passage_id(self) -> str:
        return f"{CAMERA}:line{self.lane}:{self.track_id}"


def traffic(t0_ms: int) -> list[Vehicle]:
    """A vehicle every 6 s, lanes alternating (5 per lane and minute), trucks among the cars, all gone by the end."""
    vehicles = [Vehicle(track_id=100 + i, lane=i % 2 + 1, class_id=7 if i % 5 == 4 else 2,
                        speed_kmh=SPEEDS_KMH[i % len(SPEEDS_KMH)], start_ms=t0_ms + 1_000 + i * 6_000)
                for i in range(28)]
    assert all(1_000 < v.crossing_ms % MINUTE_MS < MINUTE_MS - 1_000 for v in vehicles), "crossings off minute edges"
    return vehicles


def detection_batch(codec: AvroCodec, f) -> bytes:
    """A synthetic frame as the DetectionBatch infer publishes (as `jobs.anomaly.synthetic.as_detection_batch`, with
    one codec: building one per frame costs ~17 ms)."""
    frame_id = f"{CAMERA}:{f.ts_ms}"
    ref = {"frame_id": frame_id, "camera_id": CAMERA, "capture_ts_ms": f.ts_ms, "sequence": 0, "width": f.width,
           "height": f.height, "encoding": "jpeg", "uri": "file:///x", "ingest_ts_ms": f.ts_ms, "trace_context": {}}
    return codec.encode("DetectionBatch", {"batch_id": frame_id, "frame": ref, "model_name": "synthetic",
                                           "model_version": "1", **f.detections.to_record_fields(),
                                           "inference_ts_ms": f.ts_ms})


def status(codec: AvroCodec, ts_ms: int, state: str = "ONLINE") -> bytes:
    return codec.encode("CameraStatus", {
        "status_id": f"{CAMERA}:{state}:{ts_ms}", "camera_id": CAMERA, "ts_ms": ts_ms, "state": state,
        "frames_decoded": 0, "frames_published": 0, "decode_errors": 0, "reconnects": 0, "actual_fps": 10.0,
        "message": None})


def produce(settings, frames, statuses=(), extra=()):
    """DetectionBatch frames and CameraStatus records, Kafka record time = capture / status time."""
    producer, codec = make_producer(settings), AvroCodec()
    for ts_ms in statuses:
        producer.produce(CAMERA_STATUS.deployed(settings), key=CAMERA.encode(), value=status(codec, ts_ms),
                         timestamp=ts_ms)
    for f in frames:
        producer.produce(DETECTIONS.deployed(settings), key=CAMERA.encode(), value=detection_batch(codec, f),
                         timestamp=f.ts_ms)
        producer.poll(0)
    for ts_ms, value in extra:
        producer.produce(DETECTIONS.deployed(settings), key=CAMERA.encode(), value=value, timestamp=ts_ms)
    assert producer.flush(30) == 0


def start_job(env, tmp_path: Path, log_name: str, group: str) -> subprocess.Popen:
    with open(tmp_path / log_name, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "jobs.traffic", "--cameras", str(tmp_path / "cameras.yaml"),
                                 "--checkpoint-dir", str(tmp_path / "checkpoints"), "--restore", "latest",
                                 "--group", group],
                                env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def log(tmp_path: Path, name: str) -> str:
    return (tmp_path / name).read_text()[-3000:]


def checkpoint_times(tmp_path: Path) -> list[float]:
    """When each retained checkpoint completed (its chk-N/_metadata was written)."""
    return [p.stat().st_mtime for p in (tmp_path / "checkpoints").glob("*/chk-*/_metadata")]


def passage_ids(received) -> set[str]:
    return {record["passage_id"] for kind, record in received if kind == "VehiclePassage"}


def bin_keys(received) -> set[tuple[str, int]]:
    return {(record["lane"], record["bin_start_ms"]) for kind, record in received if kind == "TrafficBin"}


def job_dead_letters(received) -> list[dict]:
    return [record for kind, record in received if kind == "DeadLetter" and record["service"] == "traffic-job"]


def stored_rows(settings, t0_ms: int):
    """The camera's passages and its complete minutes' bins in ClickHouse, after FINAL."""
    client = connect(settings)
    passages = client.query("SELECT passage_id, lane, speed_kmh, toUnixTimestamp64Milli(ts) FROM vehicle_passages "
                            "FINAL WHERE camera_id = {c:String}", parameters={"c": CAMERA}).result_rows
    bins = client.query(
        "SELECT lane, toUnixTimestamp64Milli(bin_start), volume, volume_by_class, mean_speed_kmh, status, frames "
        "FROM traffic_bins FINAL WHERE camera_id = {c:String} AND bin_start < fromUnixTimestamp64Milli({end:Int64})",
        parameters={"c": CAMERA, "end": t0_ms + CAPTURE_MS}).result_rows
    return passages, bins


def test_counts_exactly_once_across_sigkill_and_restore(pipeline_settings, tmp_path):
    settings = pipeline_settings
    t0 = (int(time.time() * 1000) - 600_000) // MINUTE_MS * MINUTE_MS  # a minute boundary, ten minutes ago
    vehicles = traffic(t0)
    points = [point for v in vehicles for point in synthetic.drive(
        v.track_id, v.class_id, v.speed_kmh, v.start_ms, x_m=1.75 + 3.5 * (v.lane - 1), noise_px=0.5, seed=v.track_id)]
    frames = synthetic.frames(points, t0, t0 + CAPTURE_MS, CAMERA)
    statuses = list(range(t0 + 500, t0 + CAPTURE_MS, 30_000))
    (tmp_path / "cameras.yaml").write_text(yaml.safe_dump(
        {"cameras": [{"id": CAMERA, "url": "rtsp://camera/traffic", "traffic": synthetic.road()}]}))
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "VIGIL_TOPIC_NAMESPACE": settings.topic_namespace, "VIGIL_DATA_DIR": str(settings.data_dir),
           "VIGIL_FLINK_LIB_DIR": str(settings.flink_lib_dir)}
    group = f"traffic-{uuid.uuid4().hex[:6]}"
    codec, received = AvroCodec(), []  # (record type, record) as they arrive on traffic.v1 and deadletter.v1
    consumer = make_consumer(settings, f"traffic-out-{uuid.uuid4().hex[:6]}",
                             [TRAFFIC.deployed(settings), DEADLETTER.deployed(settings)])

    def collect(until, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until():
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                record_type = codec.record_type(message.value())
                received.append((record_type, codec.decode(message.value(), expected=record_type)))
        return until()

    job = start_job(env, tmp_path, "job-1.log", group)
    try:
        with running(settings, infer=False):  # the sink stores traffic.v1 and deadletter.v1
            # 1. the first 50 s of capture, until passages came out and a checkpoint completed after them; then the
            # next 50 s, and SIGKILL as soon as the job emits a passage from it (its replay brings duplicates)
            produce(settings, [f for f in frames if f.ts_ms < t0 + CHECKPOINTED_MS],
                    [ts for ts in statuses if ts < t0 + CHECKPOINTED_MS])
            assert collect(lambda: passage_ids(received), 180), log(tmp_path, "job-1.log")
            first_passage_at = time.time()
            assert collect(lambda: any(t > first_passage_at for t in checkpoint_times(tmp_path)), 30), \
                log(tmp_path, "job-1.log")
            # No status in this part: after a pause every split of the source is idle (5 s), and a status read
            # before the frames would move the watermark alone, past frames not read yet (they would come late).
            produce(settings, [f for f in frames if t0 + CHECKPOINTED_MS <= f.ts_ms < t0 + KILL_AFTER_MS])
            assert collect(lambda: any(kind == "VehiclePassage" and r["ts_ms"] >= t0 + CHECKPOINTED_MS
                                       for kind, r in received), 60), log(tmp_path, "job-1.log")
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
            before_kill = passage_ids(received)

            # 2. the rest while the job is down, with a frame and a status past the last minute so that event
            # time closes it (a restored source starts with every split active, so the backlog is read in order)
            job_settings = TrafficJobSettings()  # a bin closes once event time is this far past its end
            closing_ms = (t0 + CAPTURE_MS + job_settings.traffic_allowed_lateness_ms
                          + job_settings.traffic_out_of_orderness_ms + 1_000)
            closing_frame = synthetic.frames([], closing_ms, closing_ms + 1, CAMERA)
            produce(settings, [f for f in frames if f.ts_ms >= t0 + KILL_AFTER_MS] + closing_frame,
                    [ts for ts in statuses if ts >= t0 + CHECKPOINTED_MS] + [closing_ms])
            job = start_job(env, tmp_path, "job-2.log", group)
            want_bins = {(f"lane{lane}", t0 + minute * MINUTE_MS) for lane in (1, 2) for minute in range(3)}
            want_passages = {v.passage_id for v in vehicles}
            assert collect(lambda: passage_ids(received) >= want_passages and bin_keys(received) >= want_bins, 180), \
                (f"missing passages {sorted(want_passages - passage_ids(received))}, bins (lane, minute) "
                 f"{sorted((lane, (start - t0) // MINUTE_MS) for lane, start in want_bins - bin_keys(received))}; "
                 f"{log(tmp_path, 'job-2.log')}")
            assert "restoring from file:" in (tmp_path / "job-2.log").read_text()

            stored = wait_for_rows(settings, "SELECT count() FROM vehicle_passages FINAL WHERE camera_id = {c:String}",
                                   len(vehicles), timeout_s=60, parameters={"c": CAMERA})
            stored_bins = wait_for_rows(settings, "SELECT count() FROM traffic_bins FINAL WHERE camera_id = {c:String} "
                                        "AND bin_start < fromUnixTimestamp64Milli({end:Int64})", len(want_bins),
                                        timeout_s=60, parameters={"c": CAMERA, "end": t0 + CAPTURE_MS})
            rows, bin_rows = stored_rows(settings, t0)

            # 3. an undecodable message on detections.v1: dead-lettered by the job, stored by the sink
            produce(settings, [], extra=[(closing_ms, b"\x00\x01 not avro")])
            assert collect(lambda: job_dead_letters(received), 60), log(tmp_path, "job-2.log")
            dead = wait_for_rows(settings, "SELECT count() FROM dead_letters FINAL WHERE source_topic = {t:String} "
                                 "AND service = 'traffic-job'", 1, timeout_s=30,
                                 parameters={"t": DETECTIONS.deployed(settings)})
    finally:
        consumer.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)

    assert before_kill, "passages came out before the kill"
    assert stored == len(vehicles) and len(rows) == len(vehicles)
    assert Counter(r[0] for r in rows) == Counter(v.passage_id for v in vehicles), "each vehicle once, none lost"
    truth = {v.passage_id: v for v in vehicles}
    for passage_id, lane, speed_kmh, ts_ms in rows:
        vehicle = truth[passage_id]
        assert lane == f"lane{vehicle.lane}" and abs(speed_kmh - vehicle.speed_kmh) <= 2.0, (passage_id, speed_kmh)
        assert abs(ts_ms - vehicle.crossing_ms) <= 100, (passage_id, ts_ms - vehicle.crossing_ms)
    passages_out = [r["passage_id"] for kind, r in received if kind == "VehiclePassage"]
    assert set(passages_out) == set(truth), "replays repeat passages, they never invent one"

    # the complete minutes: volumes by lane and class, and the mean speed, as driven
    assert stored_bins == len(want_bins)
    bins = {(lane, start): (volume, dict(by_class), mean_speed, status_, frames_)
            for lane, start, volume, by_class, mean_speed, status_, frames_ in bin_rows}
    by_bin = defaultdict(list)
    for v in vehicles:
        by_bin[(f"lane{v.lane}", int(v.crossing_ms) // MINUTE_MS * MINUTE_MS)].append(v)
    assert set(bins) == want_bins == set(by_bin)
    for key, (volume, by_class, mean_speed, status_, frames_) in bins.items():
        expected = by_bin[key]
        assert volume == len(expected), (key, volume, len(expected))
        assert by_class["car"] == sum(v.class_id == 2 for v in expected), (key, by_class)
        assert by_class["truck"] == sum(v.class_id == 7 for v in expected), (key, by_class)
        assert abs(mean_speed - sum(v.speed_kmh for v in expected) / len(expected)) <= 2.0, (key, mean_speed)
        assert status_ == "ok" and frames_ == MINUTE_MS // synthetic.FRAME_MS, (key, status_, frames_)

    # at-least-once: whatever was delivered twice is one row under FINAL
    duplicates = len(passages_out) - len(set(passages_out))
    print(f"passages before the kill: {len(before_kill)}, duplicates on traffic.v1: {duplicates}")
    assert all(d["source_topic"] == DETECTIONS.deployed(settings) for d in job_dead_letters(received))
    assert dead >= 1, "the job's dead letter is stored in dead_letters"
