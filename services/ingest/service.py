"""The ingest service: cameras → frame store + `frames.v1` (FrameRef) and `camera-status.v1` (CameraStatus)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from pathlib import Path

from services.ingest.camera import CameraCounters, CameraWorker, encode_jpeg, now_ms
from services.ingest.cameras import Camera, CameraConfigError, load_cameras
from services.ingest.settings import IngestSettings
from vigil.avro_codec import AvroCodec
from vigil.framestore import open_frame_store
from vigil.kafka_io import make_producer
from vigil.statsfile import write_stats
from vigil.telemetry import current_trace_context, tracer

log = logging.getLogger("vigil.ingest")


class Publisher:
    """Stores a frame, then publishes its reference; publishes camera health. Thread-safe (one per process)."""

    def __init__(self, settings: IngestSettings):
        self.settings = settings
        self.codec = AvroCodec(settings.schema_registry_url)
        self.producer = make_producer(settings)
        self.store = open_frame_store(settings.frame_store_uri)
        self.delivery_failures = 0
        self._tracer = tracer("vigil.ingest")
        self.frames_topic, self.status_topic = settings.topic("frames.v1"), settings.topic("camera-status.v1")

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.delivery_failures += 1
            log.error("delivery to %s failed: %s", msg.topic(), err)

    def frame(self, camera: Camera, sequence: int, capture_ts_ms: int, bgr) -> None:
        with self._tracer.start_as_current_span("ingest.frame", attributes={"camera.id": camera.id, "frame.sequence": sequence}):
            uri = self.store.put(camera.id, sequence, capture_ts_ms, encode_jpeg(bgr, self.settings.jpeg_quality), "jpg")
            record = dict(frame_id=f"{camera.id}:{capture_ts_ms}:{sequence}", camera_id=camera.id,
                          capture_ts_ms=capture_ts_ms, sequence=sequence, width=int(bgr.shape[1]),
                          height=int(bgr.shape[0]), encoding="jpeg", uri=uri, ingest_ts_ms=now_ms(),
                          trace_context=current_trace_context())
            self.producer.produce(self.frames_topic, key=camera.id.encode(), timestamp=capture_ts_ms,
                                  value=self.codec.encode("FrameRef", record, self.frames_topic), on_delivery=self._delivered)
        self.producer.poll(0)

    def status(self, camera_id: str, counters: CameraCounters, actual_fps: float) -> None:
        ts = now_ms()
        record = dict(status_id=f"{camera_id}:{counters.state}:{ts}", camera_id=camera_id, ts_ms=ts,
                      state=counters.state, frames_decoded=counters.frames_decoded,
                      frames_published=counters.frames_published, decode_errors=counters.decode_errors,
                      reconnects=counters.reconnects, actual_fps=float(actual_fps), message=counters.message)
        self.producer.produce(self.status_topic, key=camera_id.encode(), timestamp=ts,
                              value=self.codec.encode("CameraStatus", record, self.status_topic), on_delivery=self._delivered)
        self.producer.poll(0)

    def close(self, timeout_s: float = 30.0) -> int:
        return self.producer.flush(timeout_s)


def run(cameras: list[Camera], settings: IngestSettings, stop: threading.Event, max_seconds: float | None = None,
        stats_file: Path | None = None) -> dict:
    """Run every camera until all finite sources end, `max_seconds` pass, or `stop` is set. Returns the counters."""
    publisher = Publisher(settings)
    workers = [CameraWorker(c, settings, publisher.frame, publisher.status) for c in cameras]
    threads = [threading.Thread(target=w.run, args=(stop,), name=f"camera-{w.camera.id}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    retention_ms = int(settings.frame_retention_hours * 3600 * 1000)
    deadline = time.monotonic() + max_seconds if max_seconds else None
    next_cleanup = time.monotonic() + 60
    try:
        while not stop.is_set() and not all(w.finished.is_set() for w in workers):
            stop.wait(0.5)
            publisher.producer.poll(0)
            if stats_file:
                _write_stats(stats_file, workers)
            if deadline and time.monotonic() > deadline:
                break
            if time.monotonic() > next_cleanup:
                removed = publisher.store.delete_older_than(now_ms() - retention_ms)
                if removed:
                    log.info("retention removed %d frames", removed)
                next_cleanup = time.monotonic() + 60
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        unsent = publisher.close()
        if stats_file:
            _write_stats(stats_file, workers)
    summary = {w.camera.id: {**{k: v for k, v in vars(w.counters).items() if not k.endswith(("_status", "_mono"))}} for w in workers}
    if unsent or publisher.delivery_failures:
        log.error("%d messages unsent, %d delivery failures", unsent, publisher.delivery_failures)
    return summary


def _write_stats(path: Path, workers: list[CameraWorker]) -> None:
    data = {w.camera.id: {"state": w.counters.state, "frames_published": w.counters.frames_published,
                          "decode_errors": w.counters.decode_errors, "reconnects": w.counters.reconnects}
            for w in workers}
    write_stats(path, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil ingest", description="Decode cameras and publish frame references.")
    parser.add_argument("--cameras", type=Path, required=True, help="camera config YAML")
    parser.add_argument("--max-seconds", type=float, help="stop after this long")
    parser.add_argument("--stats-file", type=Path, help="keep per-camera counters in this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_cameras(args.cameras)
    except CameraConfigError as exc:
        log.error("%s", exc)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    summary = run(config.cameras, IngestSettings(), stop, args.max_seconds, args.stats_file)
    log.info("ingest finished: %s", json.dumps(summary))
    return 0
