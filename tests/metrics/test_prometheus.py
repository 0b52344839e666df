"""The embedded stack's real Prometheus scrapes the real pipeline: the car footage through ingest, infer, the re-ID
embed service and the sink (threads of this process, serving /metrics on a free port registered as a target), and a
malformed frame message. Prometheus then answers with the frames each camera published, the rows the sink inserted,
the per-hop latency histograms and Triton call times, and fires the dead-letter alert."""

from __future__ import annotations

import time
import uuid

import pytest

from app.stack.process import free_port
from tests.conftest import running, stream_car
from vigil import metrics
from vigil.kafka_io import make_producer
from vigil.metrics import prometheus_query as query

pytestmark = pytest.mark.slow


def wait_value(settings, promql: str, want, timeout_s: float = 60.0):
    """The query's single value once `want(value)` holds (or the last value seen)."""
    deadline, value = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        result = query(settings, promql)
        value = float(result[0]["value"][1]) if result else None
        if value is not None and want(value):
            return value
        time.sleep(1)
    return value


@pytest.fixture(scope="module")
def scraped_run(stack):
    from tests.conftest import IngestSettings, isolated_settings

    settings = isolated_settings(stack, IngestSettings)
    port = metrics.serve(free_port())
    target = metrics.register_target(settings, "pytest", port)
    camera_id = f"metrics-{uuid.uuid4().hex[:6]}"
    producer = make_producer(settings)
    producer.produce(settings.topic("frames.v1"), key=b"cam-x", value=b"\x00\x01not avro")
    assert producer.flush(10) == 0
    with running(settings):
        published, stored = stream_car(settings, camera_id, fps=2)
        yield settings, camera_id, published, stored
    target.unlink(missing_ok=True)


def test_prometheus_counts_what_each_camera_published(scraped_run):
    settings, camera_id, published, stored = scraped_run
    assert published > 50 and stored == published
    got = wait_value(settings, f'sum(vigil_frames_total{{camera="{camera_id}", stage="published"}})',
                     lambda v: v >= published)
    assert got == published
    inferred = wait_value(settings, f'sum(vigil_frames_total{{camera="{camera_id}", stage=~"inferred|gate skipped"}})',
                          lambda v: v >= published)
    assert inferred == published  # every frame either went to Triton or was let through by the motion gate


def test_prometheus_has_rows_latency_and_triton_call_times(scraped_run):
    settings, _, published, _ = scraped_run
    assert wait_value(settings, 'sum(vigil_rows_inserted_total{table="detections"})', lambda v: v >= published) >= published
    for service in ("infer", "sink", "reid-embed"):
        count = wait_value(settings, f'sum(vigil_hop_latency_seconds_count{{service="{service}"}})', lambda v: v > 0)
        assert count and count > 0, f"no hop latency from {service}"
    p95 = wait_value(settings, 'histogram_quantile(0.95, sum by (le) (vigil_hop_latency_seconds_bucket{service="sink"}))',
                     lambda v: v > 0)
    assert p95 and p95 > 0
    assert wait_value(settings, "sum(vigil_triton_call_seconds_count)", lambda v: v > 0) > 0
    assert wait_value(settings, 'sum(vigil_batch_size_count{service="infer"})', lambda v: v > 0) > 0
    lag = wait_value(settings, 'count(vigil_consumer_lag{service="infer", topic="frames.v1"})', lambda v: v > 0)
    assert lag and lag > 0  # a series per partition it consumed from


def test_the_dead_letter_alert_fires_with_its_cause(scraped_run):
    settings = scraped_run[0]
    deadline, firing = time.monotonic() + 60, []
    while time.monotonic() < deadline and not firing:
        # other tests in this process dead-letter frames too (the registry is per process): ask for infer's alert
        firing = query(settings, 'ALERTS{alertname="VigilDeadLetters", alertstate="firing", service="infer", '
                                 'topic="frames.v1"}')
        time.sleep(1)
    assert {(a["metric"]["service"], a["metric"]["cause"]) for a in firing} >= {("infer", "undecodable")}


def test_the_stack_reports_prometheus_with_its_rules(stack):
    from app.stack.components import Prometheus

    health = Prometheus(stack).health()
    assert health.ok and "7 alert rules" in health.detail
