"""Spans to an OpenTelemetry Collector (or Tempo, Jaeger, any OTLP receiver) over OTLP/HTTP with the JSON encoding.

The SDK's own OTLP exporters need `opentelemetry-proto`, which needs protobuf >= 5; Triton's gRPC client (2.49, the
newest whose generated code runs on the grpcio that PyFlink's apache-beam allows) needs protobuf < 5, so the two cannot
share an environment. OTLP/HTTP defines a JSON encoding of the same messages (the protobuf JSON mapping, with trace and
span ids as hex strings) that every OTLP receiver accepts on the same `/v1/traces` path; this exporter writes it with
nothing beyond `requests`.

Configured by the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
`OTEL_EXPORTER_OTLP_ENDPOINT` (its base; `/v1/traces` is appended), `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, e.g. an
API key: sent, never logged) and `OTEL_EXPORTER_OTLP_TIMEOUT` (seconds, default 10). A refused batch is retried with
back-off on 429, 502, 503, 504 and connection errors (the spec's retryable cases), then dropped with a warning that
names the status, never the headers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from urllib.parse import unquote

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("vigil.traces.otlp")

RETRYABLE = {429, 502, 503, 504}
TRIES = 4


def _value(value) -> dict:
    """An attribute value as an OTLP AnyValue (the JSON mapping: 64-bit integers as strings)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes) -> list[dict]:
    return [{"key": str(key), "value": _value(value)} for key, value in (attributes or {}).items()]


def _span(span: ReadableSpan) -> dict:
    context, parent = span.get_span_context(), span.parent
    out = {"traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}", "name": span.name,
           "kind": span.kind.value + 1,  # the SDK's INTERNAL=0 is OTLP's SPAN_KIND_INTERNAL=1, and so on
           "startTimeUnixNano": str(span.start_time), "endTimeUnixNano": str(span.end_time or span.start_time),
           "attributes": _attributes(span.attributes),
           "status": {"code": span.status.status_code.value, **({"message": span.status.description}
                                                                if span.status.description else {})}}
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    if context.trace_state:
        out["traceState"] = context.trace_state.to_header()
    if span.events:
        out["events"] = [{"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": _attributes(e.attributes)}
                         for e in span.events]
    if span.links:
        out["links"] = [{"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}",
                         "attributes": _attributes(link.attributes)} for link in span.links]
    return out


def encode(spans: Sequence[ReadableSpan]) -> dict:
    """An ExportTraceServiceRequest in the OTLP JSON encoding: spans grouped by resource, then by scope."""
    by_resource: dict = {}
    for span in spans:
        scope = span.instrumentation_scope
        scopes = by_resource.setdefault(span.resource, {})
        scopes.setdefault((scope.name, scope.version or "") if scope else ("", ""), []).append(_span(span))
    return {"resourceSpans": [
        {"resource": {"attributes": _attributes(resource.attributes)},
         "scopeSpans": [{"scope": {"name": name, **({"version": version} if version else {})}, "spans": items}
                        for (name, version), items in scopes.items()]}
        for resource, scopes in by_resource.items()]}


def _headers(raw: str) -> dict[str, str]:
    headers = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if sep:
            headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def endpoint_from_env() -> str | None:
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


class OTLPJsonSpanExporter(SpanExporter):
    def __init__(self, endpoint: str | None = None, headers: dict[str, str] | None = None,
                 timeout_s: float | None = None, backoff_s: float = 1.0):
        self.endpoint = endpoint or endpoint_from_env()
        if not self.endpoint:
            raise ValueError("no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        self.headers = {"Content-Type": "application/json",
                        **(headers if headers is not None else _headers(os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")))}
        self.timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", 10))
        self.backoff_s = backoff_s
        self.session = requests.Session()
        self.exported = self.dropped = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        body, why = encode(spans), ""
        for attempt in range(TRIES):
            try:
                response = self.session.post(self.endpoint, json=body, headers=self.headers, timeout=self.timeout_s)
                if response.status_code < 300:
                    self.exported += len(spans)
                    return SpanExportResult.SUCCESS
                why = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE:
                    break
            except requests.RequestException as exc:
                why = type(exc).__name__
            if attempt < TRIES - 1:
                time.sleep(self.backoff_s * 2 ** attempt)
        self.dropped += len(spans)
        log.warning("OTLP export of %d spans to %s failed (%s); dropped", len(spans), self.endpoint, why)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.session.close()
