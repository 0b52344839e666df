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
from services.infer.summaries import TrackSummaries, TritonEmbedder
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
    reid_model: str = Field("reid_learned", description="Triton embedder for track summaries on tracks.v1: reid_color, "
                            "reid_learned, or '' for none (summaries then carry no embedding).")
    reid_embed_every: int = Field(2, ge=1, description="Embed every n-th detection of a track.")
    reid_max_samples: int = Field(32, ge=1, description="Most embeddings kept per track for its robust mean.")
    track_summary_interval_ms: int = Field(30_000, ge=1000, description="Periodic summary of a live track (capture time).")
    track_idle_ms: int = Field(5_000, ge=100, description="A camera silent this long (wall time) has all its tracks ended.")


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
        self.tracks_topic = settings.topic("tracks.v1")
        self.embedder = self._embedder(settings) if settings.reid_model else None
        self.summaries = TrackSummaries(settings.reid_embed_every, settings.reid_max_samples,
                                        settings.track_summary_interval_ms)
        self.last_frame_wall: dict[str, float] = {}
        self.last_capture_ms: dict[str, int] = {}
        self.last_progress_wall: dict[str, float] = {}
        self.summaries_published = 0
        self.processed = 0
        self.dropped: Counter = Counter()
        self.batches = 0
        self._tracer = tracer("vigil.infer")

    @staticmethod
    def _embedder(settings: InferSettings) -> TritonEmbedder:
        try:
            return TritonEmbedder(settings.triton_url, settings.reid_model)
        except Exception as exc:  # tritonclient: model unknown or not loaded
            raise RuntimeError(f"re-ID embedder {settings.reid_model!r} is not served by Triton at {settings.triton_url} "
                               f"({str(exc).splitlines()[0]}); add it to VIGIL_TRITON_MODELS, or set VIGIL_REID_MODEL='' to "
                               "publish track summaries without embeddings") from None

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
        ended: list[tuple[str, list[int]]] = []
        for (frame, rgb), dets in zip(frames, detections):
            with self._tracer.start_as_current_span("infer.frame", context=context_from(frame["trace_context"]),
                                                    attributes={"camera.id": frame["camera_id"]}):
                tracker = self.trackers[frame["camera_id"]]
                tracked = tracker.update(dets)
                self.summaries.observe(frame["camera_id"], frame["capture_ts_ms"], tracked, rgb)
                ended.append((frame["camera_id"], tracker.ended))
                self.last_frame_wall[frame["camera_id"]] = time.monotonic()
                record = dict(batch_id=frame["frame_id"], frame=frame, model_name=self.detector.model_name,
                              model_version=str(self.detector.model_version), inference_ts_ms=now_ms(),
                              **tracked.to_record_fields())
                self.producer.produce(self.detections_topic, key=frame["camera_id"].encode(), timestamp=frame["capture_ts_ms"],
                                      value=self.codec.encode("DetectionBatch", record, self.detections_topic))
        if not self._embed_pending(stop):
            return None
        for camera_id, track_ids in ended:
            self._publish_summaries(self.summaries.end(camera_id, track_ids), final=True)
        for camera_id in {frame["camera_id"] for frame, _ in frames}:
            latest = max(frame["capture_ts_ms"] for frame, _ in frames if frame["camera_id"] == camera_id)
            self.last_capture_ms[camera_id] = max(latest, self.last_capture_ms.get(camera_id, 0))
            self._publish_summaries(self.summaries.due(camera_id, latest), final=False)
            self._publish_progress(camera_id)
        self.processed += len(frames)
        self.batches += 1
        return len(frames)

    # --- track summaries (tracks.v1) -----------------------------------------------------------------------------
    def _embed_pending(self, stop) -> bool:
        crops = self.summaries.pending_crops()
        if crops is None or self.embedder is None:
            self.summaries.drop_pending()
            return True
        backoff = 0.5
        while True:
            try:
                self.summaries.add_embeddings(self.embedder.embed(crops))
                return True
            except Exception as exc:  # Triton outage: retry like detection does
                log.error("embedder call failed (%s); retrying in %.1fs", str(exc).splitlines()[0], backoff)
                if (stop.wait(backoff) if stop is not None else time.sleep(backoff)):
                    return False
                backoff = min(backoff * 2, 10.0)

    def _publish_summaries(self, states, final: bool) -> None:
        for state in states:
            crop_uri = None
            if state.best_crop is not None:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(state.best_crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    crop_uri = self.store.put(state.camera_id, state.track_id, state.last_seen_ms, jpeg.tobytes(), "track.jpg")
            record = self.summaries.record(state, final, self.embedder.name if self.embedder else "", crop_uri, now_ms())
            self.producer.produce(self.tracks_topic, key=state.camera_id.encode(), timestamp=state.last_seen_ms,
                                  value=self.codec.encode("TrackSummary", record, self.tracks_topic))
            self.summaries_published += 1

    def _publish_progress(self, camera_id: str, force: bool = False) -> None:
        """TrackProgress heartbeat on tracks.v1, at most once a second per camera: lets the re-ID job's event time
        advance while no track ends (its Kafka timestamp is the camera's latest processed capture time)."""
        now = time.monotonic()
        if not force and now - self.last_progress_wall.get(camera_id, -1e9) < 1.0:
            return
        self.last_progress_wall[camera_id] = now
        until = self.last_capture_ms[camera_id]
        open_tracks = sum(1 for cam, _ in self.summaries.tracks if cam == camera_id)
        record = dict(camera_id=camera_id, processed_until_ms=until, open_tracks=open_tracks, emitted_ts_ms=now_ms())
        self.producer.produce(self.tracks_topic, key=camera_id.encode(), timestamp=until,
                              value=self.codec.encode("TrackProgress", record, self.tracks_topic))

    def end_idle_tracks(self, idle_ms: int | None = None) -> int:
        """End the tracks of cameras that sent nothing for `idle_ms` (wall time): a stream that stopped or ended
        leaves no track open forever. Returns how many summaries were published."""
        idle_ms = self.settings.track_idle_ms if idle_ms is None else idle_ms
        before, now = self.summaries_published, time.monotonic()
        for camera_id, seen in list(self.last_frame_wall.items()):
            if (now - seen) * 1000 >= idle_ms:
                self._publish_summaries(self.summaries.end(camera_id, self.trackers[camera_id].end_all()), final=True)
                self._publish_progress(camera_id, force=True)
                del self.last_frame_wall[camera_id]
        return self.summaries_published - before

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
                    if self.end_idle_tracks():
                        self.producer.flush(30)
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
            self.end_idle_tracks(idle_ms=0)  # the service stops: every open track ends here
            self.producer.flush(10)
            consumer.close()
            self._report(stats_file)

    def _report(self, stats_file: Path | None) -> None:
        stats = {"processed": self.processed, "batches": self.batches, "dropped": dict(self.dropped),
                 "dead_letters": self.dead_letters.count, "track_summaries": self.summaries_published,
                 "open_tracks": len(self.summaries.tracks)}
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
