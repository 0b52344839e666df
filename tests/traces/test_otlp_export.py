"""Spans to an OTLP/HTTP receiver in the JSON encoding (`vigil.otlp_json`): the request a Collector gets on
/v1/traces holds the frame's trace id (the one its FrameRef carried), parent links, typed attributes and the service
name; a receiver that answers 503 gets the batch again; one that refuses it gets no retry, and the warning never shows
the API key sent in the headers."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from vigil.otlp_json import OTLPJsonSpanExporter, endpoint_from_env


class Receiver:
    """An HTTP server on 127.0.0.1 that records what is POSTed and answers with the next of `codes`."""

    def __init__(self, codes=()):
        self.requests, self.codes = [], list(codes)
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(codes=()):
        made.append(Receiver(codes))
        return made[-1]
    yield make
    for r in made:
        r.close()


def spans_through(exporter):
    provider = TracerProvider(resource=Resource.create({"service.name": "vigil.ingest"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("vigil.ingest", "1.0")
    carrier = {}
    with tracer.start_as_current_span("ingest.frame", attributes={"camera.id": "car-park", "frame.sequence": 12,
                                                                  "frame.blurry": False, "quality.sharpness": 11.5}):
        inject(carrier)
        with tracer.start_as_current_span("ingest.publish") as child:
            child.add_event("published", {"topic": "frames.v1"})
    provider.shutdown()
    return carrier


def test_the_collector_gets_the_frames_trace_in_the_otlp_json_encoding(receiver):
    server = receiver()
    carrier = spans_through(OTLPJsonSpanExporter(f"{server.url}/v1/traces", headers={"x-api-key": "k"}))
    assert [path for path, _, _ in server.requests] == ["/v1/traces", "/v1/traces"]  # one span per export (Simple)
    spans, resources = [], []
    for _, headers, body in server.requests:
        assert headers["Content-Type"] == "application/json" and headers["x-api-key"] == "k"
        for resource_spans in json.loads(body)["resourceSpans"]:
            resources.append({a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]})
            for scope_spans in resource_spans["scopeSpans"]:
                assert scope_spans["scope"] == {"name": "vigil.ingest", "version": "1.0"}
                spans += scope_spans["spans"]
    assert all(r["service.name"] == {"stringValue": "vigil.ingest"} for r in resources)
    by_name = {s["name"]: s for s in spans}
    root, child = by_name["ingest.frame"], by_name["ingest.publish"]
    trace_id = carrier["traceparent"].split("-")[1]
    assert root["traceId"] == child["traceId"] == trace_id and len(root["spanId"]) == 16
    assert child["parentSpanId"] == root["spanId"] and "parentSpanId" not in root
    attributes = {a["key"]: a["value"] for a in root["attributes"]}
    assert attributes == {"camera.id": {"stringValue": "car-park"}, "frame.sequence": {"intValue": "12"},
                          "frame.blurry": {"boolValue": False}, "quality.sharpness": {"doubleValue": 11.5}}
    assert root["kind"] == 1 and root["status"] == {"code": 0}  # SPAN_KIND_INTERNAL, STATUS_CODE_UNSET
    assert int(root["endTimeUnixNano"]) >= int(child["endTimeUnixNano"]) > int(child["startTimeUnixNano"])
    assert child["events"][0]["name"] == "published"


def test_a_busy_collector_gets_the_batch_again_and_a_refusal_is_dropped_without_the_secret(receiver, caplog):
    busy = receiver([503, 503])
    exporter = OTLPJsonSpanExporter(f"{busy.url}/v1/traces", backoff_s=0.01)
    spans_through(exporter)
    assert len(busy.requests) == 4 and exporter.exported == 2 and exporter.dropped == 0  # 2 retries, then both in
    refusing = receiver([400] * 10)
    exporter = OTLPJsonSpanExporter(f"{refusing.url}/v1/traces", headers={"authorization": "Bearer s3cret-token"},
                                    backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="vigil.traces.otlp"):
        spans_through(exporter)
    assert len(refusing.requests) == 2, "a 400 is not retried"
    assert exporter.dropped == 2 and "HTTP 400" in caplog.text and "s3cret-token" not in caplog.text


def test_the_endpoint_and_headers_come_from_the_standard_variables(monkeypatch, receiver):
    server = receiver()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url + "/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=city%20centre, x-api-key=abc")
    assert endpoint_from_env() == f"{server.url}/v1/traces"
    spans_through(OTLPJsonSpanExporter())
    assert server.requests and server.requests[0][1]["x-tenant"] == "city centre"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom")
    assert endpoint_from_env() == "http://collector:4318/custom"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    with pytest.raises(ValueError, match="no OTLP endpoint"):
        OTLPJsonSpanExporter()


def test_a_service_process_exports_to_the_endpoint_it_is_given(receiver, tmp_path):
    """What every service's main() does (`configure_tracing`), in a fresh process with OTEL_EXPORTER_OTLP_ENDPOINT set:
    its spans, named by service, reach the receiver."""
    import os
    import subprocess
    import sys

    server = receiver()
    script = ("from vigil.config import Settings\n"
              "from vigil.telemetry import configure_tracing, flush_traces, tracer\n"
              "configure_tracing(Settings(), 'infer')\n"
              "with tracer('vigil.infer').start_as_current_span('infer.frame', attributes={'camera.id': 'c1'}):\n"
              "    pass\n"
              "assert flush_traces()\n")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": server.url, "VIGIL_DATA_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    (path, _, body), = server.requests
    resource_spans = json.loads(body)["resourceSpans"][0]
    assert path == "/v1/traces"
    assert {"key": "service.name", "value": {"stringValue": "vigil.infer"}} in resource_spans["resource"]["attributes"]
    assert resource_spans["scopeSpans"][0]["spans"][0]["name"] == "infer.frame"
