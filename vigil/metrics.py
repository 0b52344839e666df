"""Prometheus metrics of every service, in one place: the names, their labels and the one HTTP endpoint per process.

The runtime (consume, dead letters, lag, batches), the Kafka and ClickHouse outputs and the services' own steps (ingest
frames, inference drops and Triton calls, events by kind) update these; a process serves them on
`VIGIL_METRICS_PORT` (0 = not served) at /metrics. The PyFlink jobs report through Flink's own Prometheus reporter
(`vigil.flink_env`), with their user metrics under the same `vigil_` names. Alert rules over these names live in
`infra/terraform/modules/services/files/vigil-alerts.yml`: the embedded Prometheus and the Terraform deployment load
that one file.

/metrics answers without authentication, as Prometheus exporters normally do (the scraper sends no credentials): it
holds counters labelled by service, topic and camera id, never frames, URLs or secrets. It binds 127.0.0.1 unless
VIGIL_METRICS_HOST says otherwise; in a cluster keep it on the pod network, away from public ingress.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("vigil.metrics")

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONSUMED = Counter("vigil_messages_consumed", "Messages consumed, per service and (logical) topic.", ["service", "topic"])
PRODUCED = Counter("vigil_records_produced", "Records the broker acknowledged, per service and topic.",
                   ["service", "topic"])
DELIVERY_FAILURES = Counter("vigil_delivery_failures", "Records the broker did not acknowledge (sent again).",
                            ["service", "topic"])
DEAD_LETTERS = Counter("vigil_dead_letters", "Messages sent to deadletter.v1, per service, source topic and cause.",
                       ["service", "topic", "cause"])
BATCH_SIZE = Histogram("vigil_batch_size", "Records per handled batch.", ["service"], buckets=BATCH_BUCKETS)
HOP_LATENCY = Histogram("vigil_hop_latency_seconds", "Capture time → handled by this service (per-hop budget).",
                        ["service"], buckets=LATENCY_BUCKETS)
CONSUMER_LAG = Gauge("vigil_consumer_lag", "Messages between the group's position and the partition end.",
                     ["service", "topic", "partition"])
FRAMES_SEEN = Counter("vigil_frames", "Frames per camera and stage (decoded, published by ingest; inferred, skipped by "
                 "the motion gate in infer).", ["camera", "stage"])
FRAMES_DROPPED = Counter("vigil_frames_dropped", "Frames dropped, per camera and cause.", ["service", "camera", "cause"])
CAMERA_LAST_FRAME = Gauge("vigil_camera_last_frame_timestamp_seconds", "Wall time of the camera's last published "
                          "frame (a stalled camera stops advancing).", ["camera"])
CAMERA_ONLINE = Gauge("vigil_camera_online", "1 while the camera's stream is ONLINE or DEGRADED, 0 otherwise.",
                      ["camera"])
TRITON_CALL = Histogram("vigil_triton_call_seconds", "One Triton inference call (a batch), per model.", ["model"],
                        buckets=CALL_BUCKETS)
ROWS_INSERTED = Counter("vigil_rows_inserted", "Rows inserted into ClickHouse, per table.", ["table"])
EVENTS = Counter("vigil_events", "Anomaly events and incidents stored, per record type and kind.", ["record", "kind"])
DRIFT = Gauge("vigil_drift_psi", "Population stability index of a camera's feature against its baseline.",
              ["camera", "feature"])
DRIFTED = Gauge("vigil_camera_drifted", "1 while the camera is in a drift episode (significant PSI over the threshold "
                "for consecutive checks), else 0.", ["camera"])
DRIFT_EVENTS = Counter("vigil_drift_events", "Drift events raised, per camera.", ["camera"])
HTTP_REQUESTS = Counter("vigil_http_requests", "HTTP requests answered by the console and the re-ID API, per service, "
                        "route (its template, not the URL), method and status.", ["service", "route", "method", "status"])
HTTP_LATENCY = Histogram("vigil_http_request_seconds", "Time to answer an HTTP request (WebSockets: not counted), per "
                         "service and route.", ["service", "route"], buckets=CALL_BUCKETS)

_served: dict[tuple[str, int], object] = {}
_lock = threading.Lock()


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics of this process on host:port (once per process; port 0 = not at all). Returns the port."""
    if not port:
        return 0
    with _lock:
        if (host, port) not in _served:
            server, _ = start_http_server(port, addr=host)
            _served[(host, port)] = server
            log.info("metrics on http://%s:%d/metrics", host, port)
    return port


def expose(settings, name: str) -> Path | None:
    """What a process does at start: serve /metrics on VIGIL_METRICS_PORT (0 = not at all) and, in the embedded stack,
    register it as a Prometheus target: that target file (remove it at exit), or None. OSError: the port is taken."""
    port = serve(settings.metrics_port, settings.metrics_host)
    if port and settings.prometheus_embedded and settings.metrics_host in ("127.0.0.1", "localhost"):
        return register_target(settings, name, port)
    return None


def forget_target_on_shutdown(app, target: Path | None) -> None:
    """Remove the Prometheus target file when the FastAPI app shuts down (uvicorn re-raises SIGTERM after its
    shutdown, so code after `uvicorn.run` never runs on a signal; the app's lifespan does)."""
    if target is None:
        return
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application):
        async with inner(application) as state:
            try:
                yield state
            finally:
                target.unlink(missing_ok=True)
    app.router.lifespan_context = lifespan


def instrument_app(app, service: str) -> None:
    """Count and time every HTTP request of a FastAPI app (`HTTP_REQUESTS`, `HTTP_LATENCY`) by route template."""
    @app.middleware("http")
    async def measured(request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(service, template, request.method, str(status)).inc()
            HTTP_LATENCY.labels(service, template).observe(time.perf_counter() - started)


class StatsCollector:
    """A process's running figures (a dict of counts, read at scrape time) as metrics: `counters` become
    `<prefix>_<key>_total` counters and `gauges` `<prefix>_<key>` gauges. Register it once, unregister on shutdown."""

    def __init__(self, prefix: str, help_text: str, read, counters: tuple = (), gauges: tuple = ()):
        self.prefix, self.help, self.read, self.counters, self.gauges = prefix, help_text, read, counters, gauges

    def collect(self):
        values = self.read()
        for key in self.counters:
            family = CounterMetricFamily(f"{self.prefix}_{key}", f"{self.help}: {key.replace('_', ' ')}.")
            family.add_metric([], float(values.get(key, 0)))
            yield family
        for key in self.gauges:
            family = GaugeMetricFamily(f"{self.prefix}_{key}", f"{self.help}: {key.replace('_', ' ')}.")
            family.add_metric([], float(values.get(key, 0)))
            yield family

    def register(self) -> StatsCollector:
        try:
            REGISTRY.register(self)
        except ValueError:  # a second app of the same kind in this process (tests): the first one reports
            log.debug("%s metrics already registered in this process", self.prefix)
        return self

    def unregister(self) -> None:
        try:
            REGISTRY.unregister(self)
        except KeyError:
            pass


def dead_letter_cause(reason: str) -> str:
    """A bounded label from a free-text reason: the part before the first ':' (e.g. 'frame unreadable')."""
    head = reason.split(":", 1)[0].strip().lower()
    return head[:48] if head else "unknown"


class LagProbe:
    """Consumer lag of a confluent-kafka consumer's assignment, at most every `every_s` seconds, from the high
    watermarks librdkafka caches from its fetch responses: no broker round trip on the consume loop (asking the
    broker, one ListOffsets per partition, stalled infer for seconds against the embedded broker)."""

    def __init__(self, service: str, logical: dict[str, str], every_s: float = 5.0):
        self.service, self.logical, self.every_s = service, logical, every_s
        self._last = 0.0

    def maybe_measure(self, consumer) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        try:
            assignment = consumer.assignment()
            if not assignment:
                return
            for tp in consumer.position(assignment):
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0 or tp.offset < 0:  # nothing fetched from the partition yet
                    continue
                CONSUMER_LAG.labels(self.service, self.logical.get(tp.topic, tp.topic), str(tp.partition)).set(
                    max(0, high - tp.offset))
        except Exception as exc:  # the broker may be away: lag is measured again next time
            log.debug("%s: lag not measured: %s", self.service, exc)


# --- the embedded Prometheus: its configuration and file-based discovery of Vigil's processes ----------------------

ALERT_RULES = Path(__file__).resolve().parent.parent / "infra" / "terraform" / "modules" / "services" / "files" / \
    "vigil-alerts.yml"


def prometheus_config(settings, targets_dir: Path, rules: Path = ALERT_RULES) -> str:
    """prometheus.yml of the embedded stack: Triton's metrics endpoint, and every target file under `targets_dir`."""
    interval = f"{settings.prometheus_scrape_interval_s:g}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "vigil", "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}]},
            {"job_name": "triton", "static_configs": [{"targets": [f"127.0.0.1:{settings.triton_metrics_port}"]}]},
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def register_target(settings, name: str, port: int) -> Path:
    """Tell the embedded Prometheus to scrape 127.0.0.1:`port` as `name` (a file it discovers within 5 s)."""
    targets = settings.data_dir / "prometheus" / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    path = targets / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"instance_name": name}}]))
    tmp.replace(path)  # atomic: Prometheus never reads half a file
    return path


def prometheus_query(settings, promql: str, timeout_s: float = 10.0) -> list[dict]:
    """An instant query against the embedded Prometheus: the result vector ([{metric: {...}, value: [t, "v"]}])."""
    import urllib.parse
    import urllib.request

    url = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {promql!r}: {body.get('error')}")
    return body["data"]["result"]
