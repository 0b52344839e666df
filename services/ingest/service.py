"""The ingest service: cameras → frame store + `frames.v1` (FrameRef) and `camera-status.v1` (CameraStatus)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from services.ingest.backlog import Backlog
from services.ingest.camera import CameraCounters, CameraWorker, encode_jpeg, now_ms
from services.ingest.privacy import Blurrer
from services.ingest.settings import IngestSettings
from vigil.cameras import Camera, CameraConfigError, load_cameras
from vigil.framestore import open_frame_store
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import Source, SourceService, StartupError
from vigil.runtime import main as run_main
from vigil.telemetry import current_trace_context, tracer
from vigil.topics import CAMERA_STATUS, FRAMES

log = logging.getLogger("vigil.ingest")


class Publisher:
    """Blurs a frame where its camera asks for privacy, stores it, then publishes its reference; publishes camera
    health. Thread-safe (one per process)."""

    def __init__(self, settings: IngestSettings, output: KafkaOutput, blurrer: Blurrer | None = None):
        self.settings, self.output = settings, output
        self.store = open_frame_store(settings.frame_store_uri)
        self.blurrer = blurrer or Blurrer(settings, [])
        self._tracer = tracer("vigil.ingest")

    def frame(self, camera: Camera, sequence: int, capture_ts_ms: int, bgr, quality: dict | None = None) -> None:
        frame_id = f"{camera.id}:{capture_ts_ms}:{sequence}"
        with self._tracer.start_as_current_span("ingest.frame", attributes={
                "camera.id": camera.id, "frame.sequence": sequence, "frame.id": frame_id}):
            if self.blurrer.applies(camera.id):
                bgr = self.blurrer.blur(camera, bgr)  # raises when it cannot: the raw frame is never stored
            uri = self.store.put(camera.id, sequence, capture_ts_ms, encode_jpeg(bgr, self.settings.jpeg_quality), "jpg")
            record = dict(frame_id=frame_id, camera_id=camera.id,
                          capture_ts_ms=capture_ts_ms, sequence=sequence, width=int(bgr.shape[1]),
                          height=int(bgr.shape[0]), encoding="jpeg", uri=uri, ingest_ts_ms=now_ms(),
                          trace_context=current_trace_context(), quality=quality)
            self.output.write(FRAMES, "FrameRef", record, key=camera.id.encode(), timestamp_ms=capture_ts_ms)

    def status(self, camera_id: str, counters: CameraCounters, actual_fps: float) -> None:
        ts = now_ms()
        record = dict(status_id=f"{camera_id}:{counters.state}:{ts}", camera_id=camera_id, ts_ms=ts,
                      state=counters.state, frames_decoded=counters.frames_decoded,
                      frames_published=counters.frames_published, decode_errors=counters.decode_errors,
                      reconnects=counters.reconnects, actual_fps=float(actual_fps), message=counters.message)
        self.output.write(CAMERA_STATUS, "CameraStatus", record, key=camera_id.encode(), timestamp_ms=ts)


class Cameras(Source):
    """One decoding thread per camera, and the frame store's retention clean-up once a minute."""

    def __init__(self, cameras: list[Camera], settings: IngestSettings, publisher: Publisher):
        self.settings, self.publisher = settings, publisher
        fast = any(c.is_file and c.pace == "fast" for c in cameras)
        self.backlog = Backlog(settings, settings.fast_pace_max_backlog, settings.fast_pace_group) \
            if fast and settings.fast_pace_max_backlog else None
        wait = self.backlog.wait_for_room if self.backlog else None
        self.workers = [CameraWorker(c, settings, publisher.frame, publisher.status, wait) for c in cameras]
        self.threads: list[threading.Thread] = []
        self.next_cleanup = time.monotonic() + 60
        self.own_retention = own_retention(cameras, settings)

    def start(self, stop: threading.Event) -> None:
        self.threads = [threading.Thread(target=w.run, args=(stop,), name=f"camera-{w.camera.id}", daemon=True)
                        for w in self.workers]
        for thread in self.threads:
            thread.start()

    def finished(self) -> bool:
        return all(w.finished.is_set() for w in self.workers)

    def housekeeping(self) -> None:
        self.publisher.output.poll()
        if time.monotonic() > self.next_cleanup:
            retention_ms = int(self.settings.frame_retention_hours * 3600 * 1000)
            removed = self.publisher.store.delete_older_than(now_ms() - retention_ms)
            for camera_id, hours in self.own_retention.items():  # cameras whose privacy asks for less
                removed += self.publisher.store.delete_older_than(now_ms() - int(hours * 3600 * 1000), camera_id)
            if removed:
                log.info("retention removed %d frames", removed)
            self.next_cleanup = time.monotonic() + 60

    def close(self) -> None:
        for thread in self.threads:
            thread.join(timeout=15)
        if self.backlog:
            self.backlog.close()

    def stats(self) -> dict:
        return {w.camera.id: {"state": w.counters.state, "frames_published": w.counters.frames_published,
                              "decode_errors": w.counters.decode_errors, "reconnects": w.counters.reconnects}
                for w in self.workers}

    def summary(self) -> dict:
        blurred = self.publisher.blurrer.summary()
        return {w.camera.id: {**{k: v for k, v in vars(w.counters).items() if not k.endswith(("_status", "_mono"))},
                              **blurred.get(w.camera.id, {})}
                for w in self.workers}


def own_retention(cameras: list[Camera], settings: IngestSettings) -> dict[str, float]:
    """camera id → its `privacy.retention_hours`; refused at start-up when longer than the store's retention (another
    ingest process's clean-up, which does not know this camera file, would remove its frames sooner anyway)."""
    hours = {c.id: c.privacy.retention_hours for c in cameras if c.privacy and c.privacy.retention_hours}
    longer = {c: h for c, h in hours.items() if h > settings.frame_retention_hours}
    if longer:
        raise StartupError(f"privacy.retention_hours can only shorten the frame store's retention "
                           f"(VIGIL_FRAME_RETENTION_HOURS={settings.frame_retention_hours:g}); longer for {longer}")
    return hours


class IngestService(SourceService):
    def __init__(self, cameras: list[Camera], settings: IngestSettings, max_seconds: float | None = None):
        own_retention(cameras, settings)
        blurrer = Blurrer(settings, cameras)
        blurrer.check()  # before any frame is read: a blurring camera whose models are not served does not start
        self.output = KafkaOutput(settings)
        self.cameras = Cameras(cameras, settings, Publisher(settings, self.output, blurrer))
        self.max_seconds = max_seconds
        super().__init__("ingest", self.cameras, [self.output])

    def run(self, stop: threading.Event, stats_file: Path | None = None, max_seconds: float | None = None) -> dict:
        super().run(stop, stats_file, max_seconds or self.max_seconds)
        summary = self.cameras.summary()
        if self.output.delivery_failures:
            log.error("%d delivery failures", self.output.delivery_failures)
        log.info("ingest finished: %s", json.dumps(summary))
        return summary


def run(cameras: list[Camera], settings: IngestSettings, stop: threading.Event, max_seconds: float | None = None,
        stats_file: Path | None = None) -> dict:
    """Run every camera until all finite sources end, `max_seconds` pass, or `stop` is set. Returns the counters."""
    return IngestService(cameras, settings).run(stop, stats_file, max_seconds)


def _build(args) -> IngestService:
    try:
        config = load_cameras(args.cameras)
    except CameraConfigError as exc:
        raise StartupError(str(exc)) from None
    return IngestService(config.cameras, IngestSettings(), args.max_seconds)


def _arguments(parser) -> None:
    parser.add_argument("--cameras", type=Path, required=True, help="camera config YAML")
    parser.add_argument("--max-seconds", type=float, help="stop after this long")


def main(argv: list[str] | None = None) -> int:
    return run_main("vigil ingest", "Decode cameras and publish frame references.", _build, _arguments, argv)
