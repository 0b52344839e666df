"""Shared fixtures and helpers: a Settings object on free 127.0.0.1 ports and a private data directory, and the embedded stack
(real Tansu, chDB store and tritonserver) started once per test session and stopped after."""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.stack import manager
from app.stack.process import free_port
from app.scenarios import CAR_DETECTOR
from services.infer.service import InferService, InferSettings
from services.ingest.settings import IngestSettings
from services.reid.service import ReidEmbedService, ReidEmbedSettings
from services.sink.service import Sink, SinkSettings
from vigil.config import Settings
from vigil.kafka_io import ensure_topics
from vigil.store.client import connect

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CAR_VIDEO = VIDEOS / "car-detection.mp4"
PERSON_VIDEO = VIDEOS / "one-by-one-person-detection.mp4"


def make_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        triton_url=f"127.0.0.1:{free_port()}",
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        clickhouse_dsn=f"http://127.0.0.1:{free_port()}/default",
        prometheus_port=free_port(),
        prometheus_scrape_interval_s=1.0,
        **overrides,
    )


# Tests that use these fixtures start real servers: they are `slow` (`pytest -m "not slow"` runs the pure ones).
SLOW_FIXTURES = {"stack", "pipeline_settings"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("vigil"))


@pytest.fixture(scope="session")
def stack(settings):
    """The whole embedded stack, as `vigil stack up` starts it."""
    manager.up(settings, log=lambda *_: None)
    yield settings
    manager.down(settings)


@pytest.fixture(scope="module")
def restore_os_environ():
    """PyFlink runs in-process Python workers in loopback mode and leaves PYFLINK_GATEWAY_DISABLED and friends in
    os.environ; child processes started later (the Kafka-connected jobs) would then refuse to start a gateway. The
    MiniCluster test modules use this to put the environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _quiet_threads():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield


def isolated(settings, **overrides):
    """A copy of the session settings on a fresh topic namespace (its own topics, groups and frame store)."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    frame_store = (settings.data_dir / "frames" / namespace.rstrip(".")).as_uri()
    data = {**settings.model_dump(), "topic_namespace": namespace, "frame_store": frame_store, **overrides}
    return data, namespace


def isolated_settings(settings, cls=Settings, **overrides):
    """`isolated` as a settings object of `cls`, with the namespace's topics created."""
    data, _ = isolated(settings, **overrides)
    isolated_copy = cls(**data)
    ensure_topics(isolated_copy)
    return isolated_copy


@pytest.fixture
def pipeline_settings(stack):
    return isolated_settings(stack, IngestSettings, status_interval_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=1.0)


def service_settings(settings, cls, **overrides):
    return cls(**{**settings.model_dump(), **overrides})


@contextmanager
def running(settings, infer=True, sink=True, reid=None, drift=False, evidence=False):
    """Infer, the re-ID embed service (by default with infer) and sink running in threads until the block ends; the
    drift and evidence services too where asked."""
    stop = threading.Event()
    threads, services = [], {}
    if drift:
        from services.drift.service import DriftService, DriftServiceSettings

        services["drift"] = DriftService(service_settings(settings, DriftServiceSettings))
        threads.append(threading.Thread(target=services["drift"].run, args=(stop,), daemon=True))
    if evidence:
        from services.evidence.service import EvidenceService, EvidenceSettings

        services["evidence"] = EvidenceService(service_settings(settings, EvidenceSettings))
        threads.append(threading.Thread(target=services["evidence"].run, args=(stop,), daemon=True))
    if infer:
        # cameras replaying the car footage (ids "car-...") are seen by that camera's fine-tune, as in the demo
        services["infer"] = InferService(service_settings(settings, InferSettings, max_lag_ms=0,
                                                          detector_models={"car-*": CAR_DETECTOR}))
        threads.append(threading.Thread(target=services["infer"].run, args=(stop,), daemon=True))
    if (infer if reid is None else reid):
        services["reid"] = ReidEmbedService(service_settings(settings, ReidEmbedSettings))
        threads.append(threading.Thread(target=services["reid"].run, args=(stop,), daemon=True))
    if sink:
        services["sink"] = Sink(service_settings(settings, SinkSettings, sink_max_wait_ms=200))
        threads.append(threading.Thread(target=services["sink"].run, args=(stop,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield services
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def stream_car(settings, camera_id: str, fps: float) -> tuple[int, int]:
    """The car footage as camera `camera_id` through ingest, as fast as it decodes, for the services `running` in
    the caller's block; returns (frames published, their detection rows once all arrived or the wait ran out)."""
    from services.ingest.service import run as run_ingest
    from vigil.cameras import Camera

    summary = run_ingest([Camera(id=camera_id, url=str(CAR_VIDEO), fps=fps, pace="fast")], settings, threading.Event())
    published = summary[camera_id]["frames_published"]
    stored = wait_for_rows(settings, "SELECT count() FROM detections FINAL WHERE camera_id = {c:String}", published,
                           parameters={"c": camera_id})
    return published, stored


def wait_for_rows(settings, sql: str, want: int, timeout_s: float = 180.0, parameters=None) -> int:
    client = connect(settings)
    deadline = time.monotonic() + timeout_s
    got = -1
    while time.monotonic() < deadline:
        got = client.query(sql, parameters=parameters).result_rows[0][0]
        if got >= want:
            return got
        time.sleep(0.5)
    return got
