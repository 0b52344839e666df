"""The anomaly job's topology on the PyFlink MiniCluster (from_collection, event time): rules fire on a stopped car and
a wrong-way car, the approved autoencoder flags an unusual window, and normal traffic raises nothing."""

import numpy as np
import pytest
from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.anomaly.job import BYTES, PICKLED, build_pipeline, decode_detections
from jobs.anomaly.synthetic import LANE, as_detection_batch, frame, normal_traffic
from tests.flink import RecordTime
from vigil.anomaly_model import train
from vigil.config import Settings
from vigil.features import FEATURES, windowed_features
from vigil.flink_env import make_env
from vigil.model_registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_os_environ")]


def run_job(frames, registry_root, tmp_path):
    env = make_env(Settings(data_dir=tmp_path))
    records = [(f.ts_ms, as_detection_batch(f)) for f in frames]
    stream = env.from_collection(records, type_info=Types.TUPLE([Types.LONG(), BYTES])).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(500)).with_timestamp_assigner(RecordTime()))
    decoded = stream.map(lambda record: decode_detections(record[1]), output_type=PICKLED)
    events, incidents = build_pipeline(decoded, {"cam-a": LANE}, str(registry_root), window_ms=2000, warmup_windows=5,
                                       frame_store_uri=(tmp_path / "frames").as_uri())
    tagged = (events.map(lambda e: ("event", e), output_type=PICKLED)
              .union(incidents.map(lambda i: ("incident", i), output_type=PICKLED)))
    with tagged.execute_and_collect() as results:
        collected = list(results)
    return ([r for tag, r in collected if tag == "event"], [r for tag, r in collected if tag == "incident"])


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    vectors = np.stack([v for _, _, v in windowed_features(normal_traffic(0, 240, 1), 2000)])
    model = train(vectors, FEATURES, epochs=300)
    errors, _ = model.score(vectors)
    registry = Registry(root)
    version = registry.save("cam-a", model, {"window_ms": 2000, "validation": {"holdout_error": {"p99": float(np.quantile(errors, 0.99))}}})
    registry.approve("cam-a", version)
    return root


def test_job_finds_rule_and_autoencoder_anomalies(registry, tmp_path):
    t0 = 1_700_000_000_000
    frames = normal_traffic(t0, 30, 100)
    # a car drives in and stops in the lane for 10 s
    frames += [frame(t0 + 30_000 + i * 200, [(500, 2, 400, min(20 + 15 * i, 250))]) for i in range(75)]
    # a car drives up the lane, against its direction
    frames += [frame(t0 + 45_000 + i * 200, [(600, 2, 600, 420 - 12 * i)]) for i in range(30)]
    # a crowd of people in the top-left corner: nothing like the training traffic
    frames += [frame(t0 + 51_000 + i * 200, [(700 + k, 0, 30 + 20 * k, 30) for k in range(3)]) for i in range(20)]
    frames += normal_traffic(t0 + 55_000, 20, 800)
    events, incidents = run_job(frames, registry, tmp_path)
    kinds = {}
    for event in events:
        kinds.setdefault(event["kind"], []).append(event)
    assert [e["track_ids"] for e in kinds.get("stopped_vehicle", [])] == [[500]]
    assert [e["track_ids"] for e in kinds.get("wrong_way", [])] == [[600]]
    flagged = [e["window_start_ms"] - t0 for e in kinds.get("autoencoder", [])]
    assert any(50_000 <= start <= 56_000 for start in flagged), flagged
    # one incident per real-world event: the stopped car opens one, and it clears once the car is gone
    stopped = [i for i in incidents if i["kind"] == "stopped_vehicle"]
    assert [i["state"] for i in stopped] == ["open", "cleared"], stopped
    assert stopped[0]["incident_id"] == f"cam-a:stopped_vehicle:{kinds['stopped_vehicle'][0]['window_start_ms']}"
    assert stopped[1]["cleared_ms"] - t0 >= 45_000 + 10_000  # its track was last seen at 45 s; 10 s clear time
    assert stopped[0]["clip_uri"].endswith(".mp4") and stopped[0]["snapshot_uri"].endswith(".jpg")
    assert all(e["model_version"] == "v1" and e["top_cells"] for e in kinds["autoencoder"])
    assert len({e["event_id"] for e in events}) == len(events), "deterministic, unique event ids"


def test_normal_traffic_raises_nothing(registry, tmp_path):
    events, incidents = run_job(normal_traffic(1_700_000_000_000, 60, 1000), registry, tmp_path)
    assert events == [] and incidents == []
