"""OpenTelemetry: one tracer provider per process, W3C trace context carried in every FrameRef so a frame's journey
(ingest → infer → store) forms one trace. Spans are exported only when OTEL_EXPORTER_OTLP_ENDPOINT is set and an
OTLP exporter is installed; otherwise they are created and dropped, at negligible cost."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

_configured = False


def tracer(service_name: str):
    global _configured
    if not _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            except ImportError:
                pass
        trace.set_tracer_provider(provider)
        _configured = True
    return trace.get_tracer(service_name)


def current_trace_context() -> dict[str, str]:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def context_from(carrier: dict[str, str]):
    return extract(carrier or {})
