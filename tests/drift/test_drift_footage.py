"""Drift on real footage through the real pipeline: the car footage looped (steady) and the same loops darkened and
blurred from 60 s on (drifted), through ingest, Triton, infer and the drift service, with the sink storing the events.
The steady camera stays quiet; the drifted one raises one drift event, soon after the change, naming the picture
features that moved, and it reaches ClickHouse and the metrics."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from app.scenarios import DRIFT_FROM_S, build_drift
from services.drift.service import DriftService, DriftServiceSettings, baseline_file
from services.ingest.service import run as run_ingest
from tests.conftest import running, service_settings, wait_for_rows
from vigil.avro_codec import AvroCodec
from vigil.cameras import Camera
from vigil.kafka_io import make_consumer

pytestmark = pytest.mark.slow
FPS = 2.0


@pytest.fixture(scope="module")
def drift_run(stack, tmp_path_factory):
    from tests.conftest import IngestSettings, isolated_settings

    work = tmp_path_factory.mktemp("drift")
    clips = {s.name: s for s in build_drift(work / "clips")}
    settings = isolated_settings(stack, IngestSettings)
    drift_settings = service_settings(settings, DriftServiceSettings, drift_baseline_s=30, drift_window_s=30,
                                      drift_check_every_s=5, drift_consecutive=2, drift_dir=work / "baselines")
    service = DriftService(drift_settings)
    suffix = uuid.uuid4().hex[:6]
    cameras = {name: f"car-drift-{name}-{suffix}" for name in clips}  # "car-*": the car camera's own detector
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with running(settings, reid=False):
            summary = run_ingest([Camera(id=cameras[name], url=str(clip.path), fps=FPS, pace="fast", clock="video")
                                  for name, clip in clips.items()], settings, threading.Event())
            published = sum(c["frames_published"] for c in summary.values())
            deadline = time.monotonic() + 240
            while service.judge.frames < published and time.monotonic() < deadline:
                time.sleep(0.5)
            stored = wait_for_rows(settings, "SELECT count() FROM anomalies FINAL WHERE kind = 'drift' AND camera_id "
                                   "= {c:String}", 1, timeout_s=60, parameters={"c": cameras["drifted"]})
    finally:
        stop.set()
        thread.join(60)
    consumer = make_consumer(settings, f"drift-{suffix}", [settings.topic("events.v1")])
    codec, events, idle = AvroCodec(), [], 0
    while idle < 10:
        message = consumer.poll(0.5)
        if message is None or message.error():
            idle += 1
            continue
        record = codec.decode(message.value())
        if record.get("kind") == "drift":
            events.append(record)
    consumer.close()
    yield dict(settings=drift_settings, service=service, cameras=cameras, published=published, events=events,
               stored=stored, summary=summary)


def test_every_frame_was_judged_and_baselines_were_saved(drift_run):
    service, cameras = drift_run["service"], drift_run["cameras"]
    assert drift_run["published"] > 300 and service.judge.frames == drift_run["published"]
    for camera_id in cameras.values():
        assert baseline_file(drift_run["settings"], camera_id).exists()


def test_the_steady_camera_stays_quiet(drift_run):
    steady = drift_run["cameras"]["steady"]
    assert [e for e in drift_run["events"] if e["camera_id"] == steady] == []
    assert drift_run["service"].judge.cameras[steady].over == 0
    psi = REGISTRY.get_sample_value("vigil_drift_psi", {"camera": steady, "feature": "contrast"})
    assert psi is not None and psi < 0.25


def test_the_darkened_blurred_camera_raises_one_drift_event_soon_after_the_change(drift_run):
    drifted = drift_run["cameras"]["drifted"]
    events = [e for e in drift_run["events"] if e["camera_id"] == drifted]
    assert len({e["event_id"] for e in events}) == 1, events
    event = events[0]
    start_ms = drift_run["service"].judge.cameras[drifted].first_ms
    delay_s = (event["window_end_ms"] - start_ms) / 1000 - DRIFT_FROM_S
    assert 0 < delay_s <= 20, f"drift reported {delay_s:.1f} s after it began"
    assert {f.split("=")[0] for f in event["top_cells"]} & {"contrast", "sharpness"}, event["top_cells"]
    assert event["score"] > event["threshold"] == 0.25
    assert drift_run["stored"] == 1  # in ClickHouse, once
    assert REGISTRY.get_sample_value("vigil_drift_events_total", {"camera": drifted}) == 1
    assert REGISTRY.get_sample_value("vigil_camera_drifted", {"camera": drifted}) == 1  # still dark at the end
    assert REGISTRY.get_sample_value("vigil_camera_drifted", {"camera": drift_run["cameras"]["steady"]}) == 0
