"""OpenTelemetry: one tracer provider per process, W3C trace context carried in every FrameRef so a frame's journey
(ingest → infer → re-ID embed → the sink's insert) forms one trace.

Where spans go is configuration (`configure_tracing`, called by every service's `main()`):
- `VIGIL_TRACES_CLICKHOUSE=true`: into ClickHouse's `otel_traces`, in the OpenTelemetry Collector's layout
  (`vigil.trace_store`); the embedded demo does this.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set: to that Collector over OTLP/HTTP, JSON encoding
  (`vigil.otlp_json`; the protobuf exporters cannot be installed beside Triton's gRPC client).
- neither: spans are created and dropped, at negligible cost.
`VIGIL_TRACE_SAMPLE_RATIO` samples whole traces at ingest (children follow their parent's decision).
"""

from __future__ import annotations

import logging
import threading

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from vigil.otlp_json import OTLPJsonSpanExporter, endpoint_from_env

log = logging.getLogger("vigil.telemetry")

class _Sampling(Sampler):
    """Parent-based ratio sampling whose ratio `configure_tracing` can set after tracers exist (services create
    theirs while being built, before `main()` configures the process)."""

    def __init__(self, ratio: float = 1.0):
        self.set_ratio(ratio)

    def set_ratio(self, ratio: float) -> None:
        self.ratio, self.inner = ratio, ParentBased(TraceIdRatioBased(ratio))

    def should_sample(self, *args, **kwargs):
        return self.inner.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return self.inner.get_description()


_provider: TracerProvider | None = None
_sampling = _Sampling()
_lock = threading.Lock()
_exporting: set[str] = set()


def _ensure_provider(service_name: str) -> TracerProvider:
    global _provider
    with _lock:
        if _provider is None:
            _provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=_sampling)
            if endpoint_from_env():
                _provider.add_span_processor(BatchSpanProcessor(OTLPJsonSpanExporter()))
                _exporting.add("otlp")
            trace.set_tracer_provider(_provider)
        return _provider


def configure_tracing(settings, service_name: str):
    """Set up this process's provider for `service_name` as `settings` ask; adding the ClickHouse exporter later (a
    test, or a second service in one process) attaches it to the provider that already exists. Returns the provider."""
    provider = _ensure_provider(f"vigil.{service_name}")
    _sampling.set_ratio(getattr(settings, "trace_sample_ratio", 1.0))
    if getattr(settings, "traces_clickhouse", False):
        key = f"clickhouse:{settings.clickhouse_dsn}"
        with _lock:
            if key not in _exporting:
                from vigil.trace_store import ClickHouseSpanExporter

                provider.add_span_processor(BatchSpanProcessor(ClickHouseSpanExporter(settings), schedule_delay_millis=5000,
                                                                max_export_batch_size=2048, max_queue_size=8192))
                _exporting.add(key)
    return provider


def flush_traces(timeout_ms: int = 10_000) -> bool:
    """Export every finished span now (tests, and shutdown)."""
    return _provider.force_flush(timeout_ms) if _provider is not None else True


def tracer(service_name: str):
    _ensure_provider(service_name)
    return trace.get_tracer(service_name)


def current_trace_context() -> dict[str, str]:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def context_from(carrier: dict[str, str]):
    return extract(carrier or {})
