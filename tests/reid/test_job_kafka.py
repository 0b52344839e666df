"""The re-ID job as deployed: a child process reading tracks.v1 (summaries and progress heartbeats) from the real
broker with KafkaSource and writing ReidMatch to events.v1 with KafkaSink. After SIGKILL it resumes from its last
checkpoint: a match decided before the kill is not repeated, and a track seen after it joins the identity created
before it (window contents and identity state both restored); ClickHouse holds each match once. Then every stream
ends (no heartbeat moves event time past the last summaries): the idle flush still emits the last match."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from jobs.reid.synthetic import appearance, observed, summary
from tests.conftest import running, wait_for_rows
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT
from vigil.kafka_io import make_consumer, make_producer

pytestmark = pytest.mark.slow  # starts real servers or Flink

CAMERAS = ["rk-a", "rk-b", "rk-c"]
QUIET = ["rq-x", "rq-y"]  # a second site whose streams end right after its last tracks


def start_job(env, tmp_path, log_name):
    return subprocess.Popen([sys.executable, "-m", "jobs.reid", "--cameras", str(tmp_path / "cameras.yaml"),
                             "--checkpoint-dir", str(tmp_path / "checkpoints"), "--restore", "latest"],
                            env=env, cwd=REPO_ROOT, stdout=open(tmp_path / log_name, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def produce(settings, codec, summaries=(), heartbeat_ms=None):
    producer = make_producer(settings)
    for record in summaries:
        producer.produce(settings.topic("tracks.v1"), key=record["camera_id"].encode(), timestamp=record["last_seen_ms"],
                         value=codec.encode("TrackSummary", record))
    if heartbeat_ms is not None:  # infer's progress heartbeat: advances event time while no track ends
        progress = dict(camera_id="rk-a", processed_until_ms=heartbeat_ms, open_tracks=0, emitted_ts_ms=heartbeat_ms)
        for partition in range(2):  # every partition: Flink's watermark is the minimum over them
            producer.produce(settings.topic("tracks.v1"), key=b"rk-a", partition=partition, timestamp=heartbeat_ms,
                             value=codec.encode("TrackProgress", progress))
    assert producer.flush(15) == 0


def collect(consumer, codec, matches, until, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(matches):
        message = consumer.poll(0.5)
        if message is not None and not message.error() and codec.record_type(message.value()) == "ReidMatch":
            matches.append(codec.decode(message.value(), expected="ReidMatch"))
    return until(matches)


def test_matches_survive_a_kill_identities_carry_over_and_ended_streams_still_match(pipeline_settings, tmp_path):
    settings = pipeline_settings
    links = [{"from_camera": "rk-a", "to_camera": "rk-b", "max_transit_s": 30},
             {"from_camera": "rk-b", "to_camera": "rk-c", "max_transit_s": 30},
             {"from_camera": "rq-x", "to_camera": "rq-y", "max_transit_s": 30}]
    cameras = ([{"id": c, "url": f"rtsp://cam/{c}", "site": "rk"} for c in CAMERAS]
               + [{"id": c, "url": f"rtsp://cam/{c}", "site": "rq"} for c in QUIET])
    (tmp_path / "cameras.yaml").write_text(yaml.safe_dump({"cameras": cameras, "links": links}))
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VIGIL_TOPIC_NAMESPACE": settings.topic_namespace,
           "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_FLINK_LIB_DIR": str(settings.flink_lib_dir),
           "VIGIL_REID_WINDOW_MS": "60000", "VIGIL_REID_SLIDE_MS": "2000", "VIGIL_REID_OUT_OF_ORDERNESS_MS": "1000",
           "VIGIL_REID_IDLE_FLUSH_MS": "5000"}
    codec, matches = AvroCodec(), []
    consumer = make_consumer(settings, f"events-{uuid.uuid4().hex[:6]}", [settings.topic("events.v1")])
    t0 = int(time.time() * 1000) - 600_000
    person, stranger = appearance(1), appearance(2)
    ids = lambda: {(m["match_id"], m["global_id"]) for m in matches}  # noqa: E731
    job = start_job(env, tmp_path, "job-1.log")
    try:
        with running(settings, infer=False):  # the sink stores events.v1 in reid_matches
            produce(settings, codec, [summary("rk-a", 1, t0, t0 + 5_000, observed(person, 0.05, 1)),
                                      summary("rk-b", 2, t0 + 12_000, t0 + 20_000, observed(person, 0.05, 2)),
                                      summary("rk-b", 3, t0 + 14_000, t0 + 21_000, stranger)], heartbeat_ms=t0 + 30_000)
            assert collect(consumer, codec, matches, lambda m: ("rk-a:1->rk-b:2", "rk-a:1") in ids()), \
                (tmp_path / "job-1.log").read_text()[-3000:]
            time.sleep(5)  # checkpoints every 2 s
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
            # while it is down: the person reaches camera c
            produce(settings, codec, [summary("rk-c", 4, t0 + 35_000, t0 + 40_000, observed(person, 0.05, 3))],
                    heartbeat_ms=t0 + 50_000)
            job = start_job(env, tmp_path, "job-2.log")
            assert collect(consumer, codec, matches, lambda m: ("rk-b:2->rk-c:4", "rk-a:1") in ids()), \
                (tmp_path / "job-2.log").read_text()[-3000:]
            assert "restoring from file:" in (tmp_path / "job-2.log").read_text()
            # The quiet site: a person leaves x and enters y, then both streams end. Event time stays below y's track
            # (no heartbeat follows), so no window holding both ever closes: only the idle flush can decide them.
            quiet = appearance(3)
            produce(settings, codec, [summary("rq-x", 5, t0 + 60_000, t0 + 65_000, observed(quiet, 0.05, 4)),
                                      summary("rq-y", 6, t0 + 68_000, t0 + 70_000, observed(quiet, 0.05, 5))])
            assert collect(consumer, codec, matches, lambda m: ("rq-x:5->rq-y:6", "rq-x:5") in ids()), \
                (tmp_path / "job-2.log").read_text()[-3000:]
            stored = wait_for_rows(settings, "SELECT count() FROM reid_matches FINAL WHERE from_camera_id LIKE 'r%'", 3,
                                   timeout_s=60)
    finally:
        consumer.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    assert {m["match_id"] for m in matches} == {"rk-a:1->rk-b:2", "rk-b:2->rk-c:4", "rq-x:5->rq-y:6"}, \
        "no stranger matched, none lost"
    assert stored == 3, "each match once in ClickHouse, whatever the replays"
