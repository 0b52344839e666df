"""One camera: open the stream with PyAV, sample it at the target rate, store and publish each sampled frame, and
keep going through dead streams and corrupt data with capped exponential back-off, reporting health as it goes."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import av
import cv2

from services.ingest.quality import QualityMeter
from services.ingest.settings import IngestSettings
from vigil.cameras import Camera
from vigil.metrics import CAMERA_LAST_FRAME, CAMERA_ONLINE, FRAMES_DROPPED, FRAMES_SEEN
from vigil.redact import redact
from vigil.sampling import Sampler

log = logging.getLogger("vigil.ingest")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class CameraCounters:
    frames_decoded: int = 0
    frames_published: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    state: str = "OFFLINE"
    message: str | None = None
    published_at_last_status: int = 0
    errors_at_last_status: int = 0
    last_status_mono: float = field(default_factory=time.monotonic)


class CameraWorker:
    def __init__(self, camera: Camera, settings: IngestSettings, publish_frame, publish_status, wait_for_room=None):
        self.camera = camera
        self.wait_for_room = wait_for_room  # fast replays: (stop) -> bool, back-pressure (services/ingest/backlog.py)
        self.settings = settings
        self.publish_frame = publish_frame  # (camera, sequence, capture_ts_ms, bgr ndarray, quality dict) -> None
        self.publish_status = publish_status  # (camera_id, counters, actual_fps) -> None
        self.counters = CameraCounters()
        self.sequence = 0
        self.finished = threading.Event()
        self.quality = QualityMeter()  # the camera's picture-quality figures; its reference view outlives reconnects

    # --- health ----------------------------------------------------------------------------------------------
    def _set_state(self, state: str, message: str | None = None) -> None:
        changed = state != self.counters.state or message != self.counters.message
        self.counters.state, self.counters.message = state, message
        if state == "ENDED":  # a file that played to its end is neither online nor offline: no series, no alert
            try:
                CAMERA_ONLINE.remove(self.camera.id)
            except KeyError:
                pass
        else:
            CAMERA_ONLINE.labels(self.camera.id).set(1 if state in ("ONLINE", "DEGRADED") else 0)
        if changed:
            self._report()

    def _report(self) -> None:
        c = self.counters
        elapsed = max(time.monotonic() - c.last_status_mono, 1e-3)
        fps = (c.frames_published - c.published_at_last_status) / elapsed
        c.published_at_last_status, c.last_status_mono = c.frames_published, time.monotonic()
        c.errors_at_last_status = c.decode_errors
        self.publish_status(self.camera.id, c, fps)

    def maybe_report(self) -> None:
        if time.monotonic() - self.counters.last_status_mono >= self.settings.status_interval_s:
            if self.counters.state in ("ONLINE", "DEGRADED"):
                self.counters.state = "DEGRADED" if self.counters.decode_errors > self.counters.errors_at_last_status else "ONLINE"
            self._report()

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = self.settings.reconnect_initial_s
        loop_offset = 0.0
        wall_start: float | None = None
        self.anchor_ms = now_ms()  # video clock: capture time = anchor + presentation time
        while not stop.is_set():
            try:
                container = self._open()
            except Exception as exc:  # PyAV raises many error types for unreachable or undecodable sources
                self._offline(f"cannot open {self.camera.url}: {exc}")
                backoff = self._wait(stop, backoff)
                continue
            published_before = self.counters.frames_published
            try:
                self._set_state("ONLINE")
                if wall_start is None or not self.camera.is_file:
                    wall_start, loop_offset = time.monotonic(), 0.0
                ended_at = self._stream(container, stop, wall_start, loop_offset)
            except Exception as exc:
                self._offline(f"stream failed: {type(exc).__name__}: {exc}")
                ended_at = None
            finally:
                container.close()
            if self.counters.frames_published > published_before:
                backoff = self.settings.reconnect_initial_s  # it worked for a while: start back-off afresh
            if stop.is_set():
                break
            if ended_at is not None and self.camera.is_file:
                if not self.camera.loop:
                    self._set_state("ENDED", "end of file")
                    break
                loop_offset = ended_at
                continue
            if ended_at is not None:
                self._offline("stream ended")
            backoff = self._wait(stop, backoff)
        self.maybe_report()
        self.finished.set()

    def _open(self):
        options = {}
        if self.camera.url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"
        timeout = None if self.camera.is_file else (self.settings.open_timeout_s, self.settings.read_timeout_s)
        container = av.open(self.camera.source, options=options, timeout=timeout)
        if not container.streams.video:
            container.close()
            raise ValueError("no video stream in source")
        return container

    def _offline(self, message: str) -> None:
        message = redact(message)  # the URL's credentials go no further: not into the log, status or stats file
        log.warning("camera %s offline: %s", self.camera.id, message)
        self._set_state("OFFLINE", message[:500])

    def _wait(self, stop: threading.Event, backoff: float) -> float:
        self.counters.reconnects += 1
        self.maybe_report()
        stop.wait(backoff)
        return min(backoff * 2, self.settings.reconnect_max_s)

    def _stream(self, container, stop: threading.Event, wall_start: float, loop_offset: float) -> float | None:
        """Decode until the end (returns the stream time reached, for looping) or until stopped (returns None)."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        sampler = Sampler(self.camera.fps)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        last_t = 0.0
        index = 0
        for packet in container.demux(stream):
            if stop.is_set():
                return None
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self.counters.decode_errors += 1
                FRAMES_DROPPED.labels("ingest", self.camera.id, "decode error").inc()
                self.counters.message = redact(f"decode error: {exc}")[:500]
                self.maybe_report()
                continue
            for frame in frames:
                self.counters.frames_decoded += 1
                FRAMES_SEEN.labels(self.camera.id, "decoded").inc()
                t = (frame.time if frame.time is not None else index / rate) + loop_offset
                index += 1
                last_t = t
                if not sampler.take(t):
                    continue
                if self.camera.is_file and self.camera.pace == "native":
                    delay = wall_start + t / self.camera.speed - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return None
                elif self.camera.is_file and self.wait_for_room and not self.wait_for_room(stop):
                    return None
                capture_ms = now_ms() if self.camera.clock == "wall" else self.anchor_ms + int(t * 1000)
                bgr = frame.to_ndarray(format="bgr24")
                self.publish_frame(self.camera, self.sequence, capture_ms, bgr, self._quality(bgr, capture_ms))
                self.sequence += 1
                self.counters.frames_published += 1
                FRAMES_SEEN.labels(self.camera.id, "published").inc()
                CAMERA_LAST_FRAME.labels(self.camera.id).set(time.time())
                self.maybe_report()
        return last_t + 1.0 / rate

    def _quality(self, bgr, capture_ms: int) -> dict | None:
        """The frame's VideoQuality figures; None (the frame still goes out) if measuring fails."""
        try:
            return self.quality.measure(bgr, capture_ms)
        except Exception:  # a measurement bug must never stop the camera
            log.exception("camera %s: picture-quality measurement failed", self.camera.id)
            return None


def encode_jpeg(bgr, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
