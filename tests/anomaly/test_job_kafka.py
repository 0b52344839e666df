"""The anomaly job as deployed: a child process reading detections.v1 from the real broker with KafkaSource and writing
events.v1 and incidents.v1 with KafkaSink. Checks the rules end to end, hot reload of a newly approved autoencoder
without a restart, resumption from the last checkpoint after SIGKILL without losing events (duplicates share their
event id and collapse in ClickHouse), and the incidents: one per stopped car, cleared once it drove off, the same
revisions after the restart, stored with their history, and an operator's rejection counted against the rule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import yaml

from app.incidents import NOISIEST, IncidentError, publish_verdict, verdict_record
from jobs.anomaly.synthetic import LANE, as_detection_batch, frame, normal_traffic
from tests.conftest import running, wait_for_rows
from vigil.anomaly_model import train
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT
from vigil.features import FEATURES, windowed_features
from vigil.kafka_io import make_consumer, make_producer
from vigil.model_registry import Registry

pytestmark = pytest.mark.slow

CAMERA = "cam-k"


def start_job(settings, env, tmp_path, log_name):
    return subprocess.Popen([sys.executable, "-m", "jobs.anomaly", "--cameras", str(tmp_path / "cameras.yaml"),
                             "--checkpoint-dir", str(tmp_path / "checkpoints"), "--restore", "latest"],
                            env=env, cwd=REPO_ROOT, stdout=open(tmp_path / log_name, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def produce(settings, frames):
    producer, topic = make_producer(settings), settings.topic("detections.v1")
    for f in frames:
        producer.produce(topic, key=CAMERA.encode(), value=as_detection_batch(f, CAMERA), timestamp=f.ts_ms)
    assert producer.flush(15) == 0


def collect(consumer, codec, events, until, timeout_s=180, expected="AnomalyEvent"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(events):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            events.append(codec.decode(message.value(), expected=expected))
    return until(events)


def stopped_car(start_ms, track, x):
    return [frame(start_ms + i * 200, [(track, 2, x, min(20 + 15 * i, 250))]) for i in range(60)]


def test_rules_hot_reload_and_checkpoint_restore(pipeline_settings, tmp_path):
    settings = pipeline_settings
    registry_root = tmp_path / "registry"
    (tmp_path / "cameras.yaml").write_text(yaml.safe_dump({"cameras": [{"id": CAMERA, "url": "rtsp://camera/k", "zones": LANE}]}))
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VIGIL_TOPIC_NAMESPACE": settings.topic_namespace,
           "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_ANOMALY_REGISTRY": str(registry_root),
           "VIGIL_FLINK_LIB_DIR": str(settings.flink_lib_dir)}
    codec, events = AvroCodec(), []
    consumer = make_consumer(settings, f"events-{uuid.uuid4().hex[:6]}", [settings.topic("events.v1")])
    incident_consumer = make_consumer(settings, f"incidents-{uuid.uuid4().hex[:6]}", [settings.topic("incidents.v1")])
    incidents = []
    t0 = int(time.time() * 1000) - 600_000
    kinds = lambda kind: {tuple(e["track_ids"]) for e in events if e["kind"] == kind}  # noqa: E731
    job = start_job(settings, env, tmp_path, "job-1.log")
    try:
        with running(settings, infer=False):  # the sink stores events.v1 in the anomalies table
            # 1. rules, no model approved yet: only rule events
            produce(settings, normal_traffic(t0, 20, 1) + stopped_car(t0 + 20_000, 900, 400) + normal_traffic(t0 + 32_000, 8, 100))
            assert collect(consumer, codec, events, lambda ev: (900,) in kinds("stopped_vehicle")), (tmp_path / "job-1.log").read_text()[-3000:]

            # 2. approve a model while the job runs: it is picked up without a restart
            vectors = np.stack([v for _, _, v in windowed_features(normal_traffic(0, 240, 1), 2000)])
            model = train(vectors, FEATURES, epochs=300)
            errors, _ = model.score(vectors)
            registry = Registry(registry_root)
            version = registry.save(CAMERA, model, {"validation": {"holdout_error": {"p99": float(np.quantile(errors, 0.99))}}})
            registry.approve(CAMERA, version)
            time.sleep(6)  # longer than the job's registry check interval
            crowd = [frame(t0 + 40_000 + i * 200, [(700 + k, 0, 30 + 20 * k, 30) for k in range(3)]) for i in range(20)]
            produce(settings, crowd + normal_traffic(t0 + 44_000, 16, 200))
            assert collect(consumer, codec, events, lambda ev: any(e["kind"] == "autoencoder" for e in ev)), \
                (tmp_path / "job-1.log").read_text()[-3000:]
            assert {e["model_version"] for e in events if e["kind"] == "autoencoder"} == {version}

            # 3. SIGKILL after a checkpoint, more input while it is down, restart from the checkpoint
            time.sleep(5)  # checkpoints every 2 s
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
            wrong_way = [frame(t0 + 72_000 + i * 200, [(902, 2, 600, 420 - 12 * i)]) for i in range(30)]
            produce(settings, stopped_car(t0 + 60_000, 901, 500) + wrong_way + normal_traffic(t0 + 78_000, 12, 300))
            job = start_job(settings, env, tmp_path, "job-2.log")
            assert collect(consumer, codec, events, lambda ev: (901,) in kinds("stopped_vehicle") and (902,) in kinds("wrong_way")), \
                (tmp_path / "job-2.log").read_text()[-3000:]
            assert "restoring from file:" in (tmp_path / "job-2.log").read_text()

            ids = {e["event_id"] for e in events}  # what the test consumer has seen so far: the sink may be ahead
            wait_for_rows(settings, "SELECT count() FROM anomalies FINAL WHERE camera_id = {c:String}", len(ids),
                          timeout_s=60, parameters={"c": CAMERA})
            from vigil.store.client import connect
            rows, stored_ids = connect(settings).query(
                "SELECT count(), groupUniqArray(event_id) FROM anomalies FINAL WHERE camera_id = {c:String}",
                parameters={"c": CAMERA}).result_rows[0]

            # 4. incidents: one per stopped car; car 900 drove off at 32 s and its incident cleared
            def states(found, kind, track):
                return [i["state"] for i in found if i["kind"] == kind and track in i["track_ids"]]
            assert collect(incident_consumer, codec, incidents, lambda found: "cleared" in states(found, "stopped_vehicle", 900)
                           and states(found, "stopped_vehicle", 901) and states(found, "wrong_way", 902),
                           expected="Incident"), (tmp_path / "job-2.log").read_text()[-3000:]
            revisions = {}
            for incident in incidents:  # a revision replayed after the restart is the same revision
                previous = revisions.setdefault((incident["incident_id"], incident["revision"]), incident)
                assert (previous["state"], previous["event_ids"]) == (incident["state"], incident["event_ids"])
            first = next(i for i in incidents if 900 in i["track_ids"])
            history = wait_for_rows(settings, "SELECT count() FROM incidents FINAL WHERE incident_id = {i:String}",
                                    max(r for (i, r) in revisions if i == first["incident_id"]), timeout_s=60,
                                    parameters={"i": first["incident_id"]})
            assert history >= 2, "open and cleared revisions both kept"

            # 5. the operator rejects it: stored, shown in incidents_current, counted against the rule
            with pytest.raises(IncidentError, match="needs a reason"):
                verdict_record(first, "rejected", "op-1", None)
            publish_verdict(settings, verdict_record(first, "rejected", "op-1", "shadow of a tree"))
            wait_for_rows(settings, "SELECT count() FROM incidents_current WHERE incident_id = {i:String} "
                          "AND verdict = 'rejected'", 1, timeout_s=60, parameters={"i": first["incident_id"]})
            noisiest = connect(settings).query(NOISIEST).result_rows
            assert ("stopped_vehicle", CAMERA, "lane", 1, ["shadow of a tree"]) in [tuple(r) for r in noisiest], noisiest
    finally:
        incident_consumer.close()
        consumer.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    assert kinds("stopped_vehicle") == {(900,), (901,)}, "each stopped car exactly once, none lost across the kill"
    assert kinds("wrong_way") == {(902,)}
    assert rows == len(stored_ids) and ids <= set(stored_ids), "one row per event id in ClickHouse, whatever the replays"
