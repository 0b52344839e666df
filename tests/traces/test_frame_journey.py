"""One frame's journey as one trace in ClickHouse: the car footage through ingest, Triton/infer, the re-ID embed
service and the sink, with spans stored in `otel_traces` (the OpenTelemetry Collector's ClickHouse layout). A frame's
trace holds its ingest span (the root), its infer span and the sink's insert of its detection row, each a child of the
root, in that order in time; the per-hop latency budget comes out of one SQL query."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import running, stream_car, wait_for_rows
from vigil.store.client import connect
from vigil.telemetry import configure_tracing, flush_traces
from vigil.trace_store import TRACE_BUDGET

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def traced_run(stack):
    from tests.conftest import IngestSettings, isolated_settings

    settings = isolated_settings(stack, IngestSettings, traces_clickhouse=True)
    configure_tracing(settings, "pytest")
    camera_id = f"car-traced-{uuid.uuid4().hex[:6]}"
    with running(settings):
        published, _ = stream_car(settings, camera_id, fps=2)
    assert flush_traces()
    wait_for_rows(settings, "SELECT count() FROM otel_traces WHERE SpanName = 'sink.insert' AND "
                  "SpanAttributes['camera.id'] = {c:String}", published, timeout_s=60, parameters={"c": camera_id})
    return settings, camera_id, published


def test_a_frame_is_followed_from_ingest_to_its_detection_row(traced_run):
    settings, camera_id, _ = traced_run
    client = connect(settings)
    frame_id = client.query("SELECT frame_id FROM detections FINAL WHERE camera_id = {c:String} ORDER BY sequence "
                            "LIMIT 1 OFFSET 10", parameters={"c": camera_id}).result_rows[0][0]
    spans = client.query(
        "SELECT SpanName, SpanId, ParentSpanId, TraceId, Timestamp, Duration FROM otel_traces WHERE TraceId = "
        "(SELECT any(TraceId) FROM otel_traces WHERE SpanName = 'ingest.frame' AND SpanAttributes['frame.id'] = {f:String}) "
        "ORDER BY Timestamp", parameters={"f": frame_id}).result_rows
    by_name = {name: (span_id, parent, start, duration) for name, span_id, parent, _, start, duration in spans}
    assert {"ingest.frame", "infer.frame", "sink.insert"} <= set(by_name), spans
    root = by_name["ingest.frame"]
    assert root[1] == ""  # the root
    for hop in ("infer.frame", "sink.insert"):
        assert by_name[hop][1] == root[0], f"{hop} is not a child of the frame's ingest span"
    assert root[2] <= by_name["infer.frame"][2] <= by_name["sink.insert"][2]
    assert len({trace for *_, trace, _, _ in spans}) == 1


def test_every_frame_has_its_trace_and_the_budget_is_one_query(traced_run):
    settings, camera_id, published = traced_run
    client = connect(settings)
    traces = client.query("SELECT uniqExact(TraceId) FROM otel_traces WHERE SpanName = 'ingest.frame' AND "
                          "SpanAttributes['camera.id'] = {c:String}", parameters={"c": camera_id}).result_rows[0][0]
    assert traces == published
    budget = {row[0]: row for row in client.query(TRACE_BUDGET, parameters={"c": camera_id, "since": "2000-01-01 00:00:00"}).result_rows}
    assert budget["sink.insert"][1] == published and budget["infer.frame"][1] == published
    assert budget["ingest.frame"][2] <= budget["infer.frame"][2] <= budget["sink.insert"][2]


def test_sampling_keeps_whole_frames_at_the_configured_ratio():
    """A ratio set after the tracers exist applies at the root, and children follow their root's decision."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vigil.telemetry import context_from, current_trace_context, tracer

    root_tracer, child_tracer = tracer("vigil.ingest"), tracer("vigil.infer")
    memory = InMemorySpanExporter()
    provider = configure_tracing(type("S", (), {"trace_sample_ratio": 0.25})(), "pytest")
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        for i in range(2000):
            with root_tracer.start_as_current_span("ingest.frame", attributes={"frame.id": f"s{i}"}):
                carrier = current_trace_context()
            with child_tracer.start_as_current_span("infer.frame", context=context_from(carrier)):
                pass
    finally:
        configure_tracing(type("S", (), {"trace_sample_ratio": 1.0})(), "pytest")
    spans = memory.get_finished_spans()
    memory.shutdown()  # the processor stays on the process's provider: keep nothing more
    roots = {s.context.trace_id for s in spans if s.name == "ingest.frame"}
    children = {s.context.trace_id for s in spans if s.name == "infer.frame"}
    assert 350 < len(roots) < 650 and children == roots  # 25 % of 2,000, whole traces only
