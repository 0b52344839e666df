"""The inference service: `frames.v1` → micro-batches across cameras → Triton → per-camera tracker → `detections.v1`.

Infer detects, tracks and publishes, nothing else: re-ID embedding runs after publication, in its own consumer of
`detections.v1` (`services/reid/service.py`), so it never delays detections. Each record carries the track ids the
tracker dropped on that frame (`ended_track_ids`), which that consumer needs to close summaries. At-least-once through the
service runtime: offsets are committed only after the batch's records are acknowledged by the broker. A Triton
outage stalls the batch and retries it (nothing is skipped); bad messages and unreadable frames are dead-lettered.
When the service falls behind, frames older than `max_lag_ms` are dropped, and every drop is counted.

Each camera is detected by its own model where it has one: `detector_models` maps camera ids (or globs) to Triton
models; otherwise a fine-tune named `<detector_model>__<camera>` is used as soon as Triton serves it (checked every
`detector_refresh_s`, so a camera adapted while infer runs switches without a restart); otherwise `detector_model`.
A motion gate (services/infer/gate.py) skips the detector for frames of a camera with no motion and no live track.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import Counter, defaultdict

import cv2
import numpy as np
from pydantic import Field

from services.infer.detector import TritonDetector
from services.infer.gate import GateSettings, MotionGate
from vigil.config import Settings
from vigil.detections import Detections
from vigil.detector_models import adapted_name
from vigil.framestore import FrameNotFound, open_frame_store
from vigil.metrics import FRAMES_DROPPED, FRAMES_SEEN, TRITON_CALL
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, Handler, Incoming, StreamService, retry
from vigil.runtime import main as run_main
from vigil.telemetry import context_from, tracer
from vigil.topics import DETECTIONS, FRAMES
from vigil.tracker import ByteTracker, TrackerConfig

log = logging.getLogger("vigil.infer")


class InferSettings(Settings):
    detector_model: str = Field("yolox_nano", description="Triton detector: yolox_nano (default), nanodet_m, "
                                "motion_detector or yolo_onnx (your own YOLO export).")
    detector_models: dict[str, str] = Field(default_factory=dict, description="Camera id or glob → Triton detector "
                                            "for that camera (e.g. a shared fine-tune), JSON.")
    detector_refresh_s: float = Field(30.0, gt=0, description="How often infer looks for a camera's new fine-tune.")
    motion_gate: bool = Field(True, description="Skip the detector on frames without motion of cameras without a live track.")
    motion_gate_threshold: float = Field(0.002, ge=0, le=1, description="Share of changed pixels that counts as motion.")
    motion_gate_max_skip_s: float = Field(2.0, gt=0, description="A frame is detected at least this often per camera.")
    max_batch: int = Field(8, ge=1, le=64, description="Most frames per Triton request.")
    max_wait_ms: int = Field(50, ge=1, description="Longest wait for a frame when none is there. A batch is what has "
                             "arrived (up to max_batch): infer never waits to fill one.")
    max_lag_ms: int = Field(15000, ge=0, description="Frames captured longer ago than this are dropped (0 = never).")
    consumer_group: str = "vigil-infer"
    track_high_score: float = 0.5
    track_low_score: float = Field(0.1, description="The detector is asked for boxes down to this score; between it and "
                                   "track_high_score they only extend tracks (ByteTrack's second stage).")
    track_report_score: float = Field(0.3, description="An untracked detection under this score is not published.")
    track_min_hits: int = 2
    track_max_misses: int = 10
    track_idle_ms: int = Field(5_000, ge=100, description="A camera silent this long (wall time) has all its tracks ended.")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class DetectAndTrack(Handler):
    def __init__(self, settings: InferSettings, detector, output: KafkaOutput, dead_letters: DeadLetters, store):
        self.settings, self.detector, self.output, self.dead_letters = settings, detector, output, dead_letters
        self.store = store
        tracker_config = TrackerConfig(high_score=settings.track_high_score, low_score=settings.track_low_score,
                                       report_score=settings.track_report_score,
                                       min_hits=settings.track_min_hits, max_misses=settings.track_max_misses)
        # Ids are unique across restarts: each session starts from its own block of 10^5 ids.
        id_base = (int(time.time()) % 100_000_000) * 100_000 + 1
        self.trackers: dict[str, ByteTracker] = defaultdict(lambda: ByteTracker(tracker_config, id_base))
        self.last_frame_wall: dict[str, float] = {}
        self.processed, self.batches = 0, 0
        self.dropped: Counter = Counter()
        self.gate = MotionGate(GateSettings(enabled=settings.motion_gate, min_changed=settings.motion_gate_threshold,
                                            max_skip_s=settings.motion_gate_max_skip_s))
        self.models: dict[str, tuple[str, float]] = {}  # camera → (model, when resolved)
        self.detected_by_model: Counter = Counter()
        self._tracer = tracer("vigil.infer")

    def model_for(self, camera_id: str) -> str:
        """The camera's detector: configured, else its own fine-tune once Triton serves it, else the default."""
        for pattern, model in self.settings.detector_models.items():
            if fnmatch.fnmatchcase(camera_id, pattern):
                return model
        cached = self.models.get(camera_id)
        if cached and time.monotonic() - cached[1] < self.settings.detector_refresh_s:
            return cached[0]
        own = adapted_name(self.detector.model_name, camera_id)
        model = own if self.detector.is_served(own) else self.detector.model_name
        if cached and cached[0] != model:
            log.info("camera %s: detector %s → %s", camera_id, cached[0], model)
        self.models[camera_id] = (model, time.monotonic())
        return model

    def _pixels(self, incoming: Incoming) -> np.ndarray | None:
        """The frame's RGB pixels; None (after dead-lettering or counting a drop) when it cannot or need not be detected."""
        frame = incoming.record
        if self.settings.max_lag_ms and now_ms() - frame["capture_ts_ms"] > self.settings.max_lag_ms:
            self.dropped[frame["camera_id"]] += 1
            FRAMES_DROPPED.labels("infer", frame["camera_id"], "stale").inc()
            return None
        try:
            data = self.store.get(frame["uri"])
            if not data:  # cv2.imdecode asserts on an empty buffer (cv2.error) instead of returning None
                raise ValueError(f"{frame['uri']} is empty (0 bytes)")
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if pixels is None:
                raise ValueError(f"{frame['uri']} is not a decodable image")
        except (FrameNotFound, ValueError, OSError) as exc:
            self.dead_letters.send(incoming.message, f"frame unreadable: {exc}", cause="frame unreadable")
            return None
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)

    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        began = time.time_ns()  # each frame's infer.frame span: from here (consumed) to its DetectionBatch written
        frames = [(incoming.record, rgb) for incoming in batch if (rgb := self._pixels(incoming)) is not None]
        if not frames:
            return True
        plan = self._plan(frames)  # decided once: a retried Triton call must not re-run the gate
        ok, detections = retry(lambda: self._detect(frames, plan), stop, "Triton call", log)
        if not ok:
            return False
        for (frame, _), (model, dets) in zip(frames, detections):
            camera_id = frame["camera_id"]
            with self._tracer.start_as_current_span("infer.frame", context=context_from(frame["trace_context"]),
                                                    start_time=began,
                                                    attributes={"camera.id": camera_id, "frame.id": frame["frame_id"],
                                                                "detector.model": model}):
                tracker = self.trackers[camera_id]
                tracked = tracker.update(dets)
                self.last_frame_wall[camera_id] = time.monotonic()
                record = dict(batch_id=frame["frame_id"], frame=frame, model_name=model,
                              model_version=str(self.detector.served_version(model)), inference_ts_ms=now_ms(),
                              ended_track_ids=list(tracker.ended), **tracked.to_record_fields())
                self.output.write(DETECTIONS, "DetectionBatch", record, key=camera_id.encode(),
                                  timestamp_ms=frame["capture_ts_ms"])
        self.processed += len(frames)
        self.batches += 1
        return True

    def _plan(self, frames) -> list[tuple[str, bool]]:
        """(model, detect?) per frame: the camera's model, and whether the motion gate lets the frame skip it."""
        plan = []
        for frame, rgb in frames:
            camera_id = frame["camera_id"]
            live = len(self.trackers[camera_id].tracks)
            plan.append((self.model_for(camera_id),
                         self.gate.needs_inference(camera_id, frame["capture_ts_ms"], rgb, live)))
        return plan

    def _detect(self, frames, plan) -> list[tuple[str, Detections]]:
        """(model, detections) per frame, in order: one Triton call per model and frame size; a frame the gate lets
        skip inference gets no detections (nothing moves and nothing is tracked there)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        results: list = [None] * len(frames)
        for index, ((_, rgb), (model, needed)) in enumerate(zip(frames, plan)):
            FRAMES_SEEN.labels(frames[index][0]["camera_id"], "inferred" if needed else "gate skipped").inc()
            if needed:
                groups[(model, rgb.shape)].append(index)
            else:
                results[index] = (model, Detections.empty())
        for (model, _), indices in groups.items():
            began = time.perf_counter()
            out = self.detector.detect([frames[i][1] for i in indices], [frames[i][0]["camera_id"] for i in indices], model,
                                       min_score=self.settings.track_low_score)  # weak boxes for the second stage
            TRITON_CALL.labels(model).observe(time.perf_counter() - began)
            for i, dets in zip(indices, out):
                results[i] = (model, dets)
        for (model, _), indices in groups.items():
            self.detected_by_model[model] += len(indices)
        return results

    def end_idle_tracks(self, idle_ms: int | None = None) -> int:
        """End the tracks of cameras that sent nothing for `idle_ms` (wall time): a stream that stopped or ended
        leaves no track open forever (the re-ID embed service closes their summaries on the same silence, as it sees
        it). Returns how many tracks ended."""
        idle_ms = self.settings.track_idle_ms if idle_ms is None else idle_ms
        ended, now = 0, time.monotonic()
        for camera_id, seen in list(self.last_frame_wall.items()):
            if (now - seen) * 1000 >= idle_ms:
                ended += len(self.trackers[camera_id].end_all())
                del self.last_frame_wall[camera_id]
        return ended

    def idle(self) -> None:
        self.end_idle_tracks()

    def close(self) -> None:
        self.end_idle_tracks(idle_ms=0)  # the service stops: every open track ends here

    def stats(self) -> dict:
        return {"processed": self.processed, "batches": self.batches, "dropped": dict(self.dropped),
                "detected_by_model": dict(self.detected_by_model), **self.gate.stats()}


class InferService(StreamService):
    def __init__(self, settings: InferSettings, detector: TritonDetector | None = None):
        self.kafka = KafkaOutput(settings)
        dead_letters = DeadLetters(self.kafka, "infer", settings)
        detector = detector or TritonDetector(settings.triton_url, settings.detector_model, settings.max_batch)
        store = open_frame_store(settings.frame_store_uri)
        self.detect_and_track = DetectAndTrack(settings, detector, self.kafka, dead_letters, store)
        super().__init__(settings, "infer", [FRAMES], self.detect_and_track, [self.kafka], dead_letters,
                         settings.consumer_group, batch_size=settings.max_batch, poll_timeout_s=settings.max_wait_ms / 1000,
                         codec=self.kafka.codec, consumer_overrides={"max.poll.interval.ms": 300000, "fetch.wait.max.ms": 10},
                         greedy_batches=True)


def main(argv: list[str] | None = None) -> int:
    return run_main("vigil infer", "Detect and track objects on frame references.",
                    lambda args: InferService(InferSettings()), argv=argv)
