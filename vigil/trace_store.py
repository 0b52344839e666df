"""Spans into ClickHouse, in the table layout of the OpenTelemetry Collector's ClickHouse exporter (`otel_traces`,
migration 0006), so one SQL query follows a frame from ingest to its detection row and the same queries (and Grafana's
ClickHouse data source) work against a production Collector's tables.

Used by `vigil.telemetry` when `VIGIL_TRACES_CLICKHOUSE=true` (the embedded stack's demo turns it on); spans go in
batches from the SDK's BatchSpanProcessor thread, never on a service's hot path.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("vigil.traces")

# The per-hop latency budget of a camera's frames, from their traces: per span name, how long after the frame's
# ingest span began that hop was done (p50/p95), and the hop's own duration. {c}: camera id, {since}: from.
TRACE_BUDGET = """
SELECT SpanName AS hop, count() AS spans,
       round(quantile(0.5)(offset_ms), 1) AS done_after_capture_p50_ms,
       round(quantile(0.95)(offset_ms), 1) AS done_after_capture_p95_ms,
       round(quantile(0.5)(Duration) / 1e6, 2) AS own_duration_p50_ms
FROM (
    SELECT s.SpanName AS SpanName, s.Duration AS Duration,
           dateDiff('millisecond', r.Timestamp, s.Timestamp + toIntervalNanosecond(s.Duration)) AS offset_ms
    FROM otel_traces AS s
    INNER JOIN (SELECT TraceId, Timestamp FROM otel_traces WHERE SpanName = 'ingest.frame'
                AND SpanAttributes['camera.id'] = {c:String} AND Timestamp >= {since:DateTime64(3)}) AS r
        ON s.TraceId = r.TraceId
)
GROUP BY SpanName ORDER BY done_after_capture_p50_ms
"""

COLUMNS = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
           "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
           "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
           "Links.TraceState", "Links.Attributes"]
KINDS = {0: "Internal", 1: "Server", 2: "Client", 3: "Producer", 4: "Consumer"}  # the exporter's SpanKind names
STATUS = {0: "Unset", 1: "Ok", 2: "Error"}


def _time(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)


def _attributes(attributes) -> dict[str, str]:
    return {str(k): str(v) for k, v in (attributes or {}).items()}


def span_row(span: ReadableSpan) -> list:
    context, parent = span.get_span_context(), span.parent
    resource = _attributes(span.resource.attributes)
    scope = span.instrumentation_scope
    return [
        _time(span.start_time), f"{context.trace_id:032x}", f"{context.span_id:016x}",
        f"{parent.span_id:016x}" if parent else "", str(context.trace_state.to_header()) if context.trace_state else "",
        span.name, KINDS.get(span.kind.value, "Internal"), resource.get("service.name", ""), resource,
        scope.name if scope else "", (scope.version or "") if scope else "", _attributes(span.attributes),
        max(0, (span.end_time or span.start_time) - span.start_time), STATUS.get(span.status.status_code.value, "Unset"),
        span.status.description or "",
        [_time(e.timestamp) for e in span.events], [e.name for e in span.events],
        [_attributes(e.attributes) for e in span.events],
        [f"{link.context.trace_id:032x}" for link in span.links], [f"{link.context.span_id:016x}" for link in span.links],
        ["" for _ in span.links], [_attributes(link.attributes) for link in span.links],
    ]


class ClickHouseSpanExporter(SpanExporter):
    """Inserts finished spans into `otel_traces`. A failed insert drops that batch (logged): traces are diagnostics,
    never worth stalling the pipeline for."""

    def __init__(self, settings, client=None):
        self.settings = settings
        self._client = client
        self.exported = 0
        self.failed = 0

    @property
    def client(self):
        if self._client is None:
            from vigil.store.client import connect

            self._client = connect(self.settings)
        return self._client

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            self.client.insert("otel_traces", [span_row(s) for s in spans], column_names=COLUMNS)
        except Exception as exc:  # the store may be away; the next batch tries again
            self.failed += len(spans)
            log.warning("%d spans not stored in otel_traces: %s", len(spans), str(exc).splitlines()[0][:200])
            self._client = None
            return SpanExportResult.FAILURE
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._client = None
