"""Helpers to run the real-time path in-process against the session's embedded stack, isolated per test by a topic
namespace and unique camera ids."""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager

import pytest

from services.infer.service import InferService, InferSettings
from services.ingest.settings import IngestSettings
from services.sink.service import Sink, SinkSettings
from vigil.kafka_io import ensure_topics
from vigil.store.client import connect


def isolated(settings, **overrides):
    """A copy of the session settings on a fresh topic namespace (its own topics, groups and frame store)."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    frame_store = (settings.data_dir / "frames" / namespace.rstrip(".")).as_uri()
    data = {**settings.model_dump(), "topic_namespace": namespace, "frame_store": frame_store, **overrides}
    return data, namespace


@pytest.fixture
def pipeline_settings(stack):
    data, _ = isolated(stack, status_interval_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=1.0)
    base = IngestSettings(**data)
    ensure_topics(base)
    return base


def service_settings(settings, cls, **overrides):
    return cls(**{**settings.model_dump(), **overrides})


@contextmanager
def running(settings, infer=True, sink=True):
    """Infer and sink running in threads until the block ends."""
    stop = threading.Event()
    threads, services = [], {}
    if infer:
        services["infer"] = InferService(service_settings(settings, InferSettings, max_lag_ms=0))
        threads.append(threading.Thread(target=services["infer"].run, args=(stop,), daemon=True))
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
