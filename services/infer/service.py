"""The inference service: `frames.v1` → micro-batches across cameras → Triton → per-camera tracker → `detections.v1`.

At-least-once: offsets are committed only after the batch's detections are acknowledged by the broker. A Triton
outage stalls the batch and retries it (nothing is skipped); bad messages and unreadable frames are dead-lettered.
When the service falls behind, frames older than `max_lag_ms` are dropped, and every drop is counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from services.infer.detector import TritonDetector
from services.infer.tracker import ByteTracker, TrackerConfig
from vigil.avro_codec import AvroCodec, UndecodableMessage
from vigil.config import Settings
from vigil.deadletter import DeadLetters
from vigil.framestore import FrameNotFound, open_frame_store
from vigil.kafka_io import make_consumer, make_producer
from vigil.statsfile import write_stats
from vigil.telemetry import context_from, tracer

log = logging.getLogger("vigil.infer")


class InferSettings(Settings):
    detector_model: str = Field("motion_detector", description="Triton model: motion_detector or yolo_onnx.")
    max_batch: int = Field(8, ge=1, le=64, description="Most frames per Triton request.")
    max_wait_ms: int = Field(50, ge=1, description="Longest wait to fill a micro-batch.")
    max_lag_ms: int = Field(15000, ge=0, description="Frames captured longer ago than this are dropped (0 = never).")
    consumer_group: str = "vigil-infer"
    track_high_score: float = 0.5
    track_low_score: float = 0.1
    track_min_hits: int = 2
    track_max_misses: int = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class InferService:
    def __init__(self, settings: InferSettings, detector: TritonDetector | None = None):
        self.settings = settings
        self.codec = AvroCodec(settings.schema_registry_url)
        self.store = open_frame_store(settings.frame_store_uri)
        self.producer = make_producer(settings)
        self.dead_letters = DeadLetters(self.producer, self.codec, "infer", settings.topic("deadletter.v1"))
        self.frames_topic, self.detections_topic = settings.topic("frames.v1"), settings.topic("detections.v1")
        self.detector = detector or TritonDetector(settings.triton_url, settings.detector_model, settings.max_batch)
        self.tracker_config = TrackerConfig(high_score=settings.track_high_score, low_score=settings.track_low_score,
                                            min_hits=settings.track_min_hits, max_misses=settings.track_max_misses)
        # Ids are unique across restarts: each session starts from its own block of 10^5 ids.
        self._id_base = (int(time.time()) % 100_000_000) * 100_000 + 1
        self.trackers: dict[str, ByteTracker] = defaultdict(lambda: ByteTracker(self.tracker_config, self._id_base))
        self.processed = 0
        self.dropped: Counter = Counter()
        self.batches = 0
        self._tracer = tracer("vigil.infer")

    # --- one micro-batch -------------------------------------------------------------------------------------
    def process(self, messages: list, stop: threading.Event | None = None) -> int | None:
        """Detect, track and publish one micro-batch; returns how many DetectionBatch records were published, or None
        when stopped while waiting for Triton (then nothing was published and the batch must not be committed)."""
        frames = []
        for message in messages:
            if message.error():
                log.warning("consumer error: %s", message.error())
                continue
            try:
                frame = self.codec.decode(message.value(), expected="FrameRef")
            except UndecodableMessage as exc:
                self.dead_letters.send(message, str(exc))
                continue
            if self.settings.max_lag_ms and now_ms() - frame["capture_ts_ms"] > self.settings.max_lag_ms:
                self.dropped[frame["camera_id"]] += 1
                continue
            try:
                pixels = cv2.imdecode(np.frombuffer(self.store.get(frame["uri"]), np.uint8), cv2.IMREAD_COLOR)
                if pixels is None:
                    raise ValueError(f"{frame['uri']} is not a decodable image")
            except (FrameNotFound, ValueError, OSError) as exc:
                self.dead_letters.send(message, f"frame unreadable: {exc}")
                continue
            frames.append((frame, cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)))
        if not frames:
            return 0
        detections = self._detect_with_retry(frames, stop)
        if detections is None:
            return None
        for (frame, _), dets in zip(frames, detections):
            with self._tracer.start_as_current_span("infer.frame", context=context_from(frame["trace_context"]),
                                                    attributes={"camera.id": frame["camera_id"]}):
                tracked = self.trackers[frame["camera_id"]].update(dets)
                record = dict(batch_id=frame["frame_id"], frame=frame, model_name=self.detector.model_name,
                              model_version=str(self.detector.model_version), inference_ts_ms=now_ms(),
                              **tracked.to_record_fields())
                self.producer.produce(self.detections_topic, key=frame["camera_id"].encode(), timestamp=frame["capture_ts_ms"],
                                      value=self.codec.encode("DetectionBatch", record, self.detections_topic))
        self.processed += len(frames)
        self.batches += 1
        return len(frames)

    def _detect_with_retry(self, frames, stop):
        """Group frames by size (one tensor per request), keep the order, retry through Triton outages."""
        backoff = 0.5
        while True:
            try:
                by_shape: dict[tuple, list[int]] = defaultdict(list)
                for index, (_, rgb) in enumerate(frames):
                    by_shape[rgb.shape].append(index)
                results: list = [None] * len(frames)
                for indices in by_shape.values():
                    out = self.detector.detect([frames[i][1] for i in indices], [frames[i][0]["camera_id"] for i in indices])
                    for i, dets in zip(indices, out):
                        results[i] = dets
                return results
            except Exception as exc:  # tritonclient raises InferenceServerException for outages and overload
                log.error("Triton call failed (%s); retrying in %.1fs", str(exc).splitlines()[0], backoff)
                if stop is not None and stop.wait(backoff):
                    return None
                if stop is None:
                    time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, stats_file: Path | None = None) -> None:
        consumer = make_consumer(self.settings, self.settings.consumer_group, [self.frames_topic],
                                 **{"max.poll.interval.ms": 300000, "fetch.wait.max.ms": 10})
        last_log = time.monotonic()
        try:
            while not stop.is_set():
                messages = consumer.consume(self.settings.max_batch, self.settings.max_wait_ms / 1000)
                if not messages:
                    continue
                if self.process(messages, stop) is None:
                    break  # stopped mid-batch: offsets stay uncommitted and the batch is redone on restart
                if self.producer.flush(30) == 0:
                    consumer.commit(asynchronous=False)
                else:
                    log.error("detections not acknowledged by the broker; offsets left uncommitted")
                if stats_file:
                    self._report(stats_file)
                if time.monotonic() - last_log > 10:
                    self._report(None)
                    last_log = time.monotonic()
        finally:
            self.producer.flush(10)
            consumer.close()
            self._report(stats_file)

    def _report(self, stats_file: Path | None) -> None:
        stats = {"processed": self.processed, "batches": self.batches, "dropped": dict(self.dropped),
                 "dead_letters": self.dead_letters.count}
        if stats_file:
            write_stats(stats_file, stats)
        else:
            log.info("infer: %s", json.dumps(stats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil infer", description="Detect and track objects on frame references.")
    parser.add_argument("--stats-file", type=Path, help="keep counters in this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    InferService(InferSettings()).run(stop, args.stats_file)
    return 0
