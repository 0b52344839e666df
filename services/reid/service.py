"""The re-ID embed service: `detections.v1` → the frames' pixels from the frame store → the re-ID stage → `tracks.v1`.

Its own consumer of the published detections, so embedding never delays them: infer detects, tracks and publishes,
and this service crops, embeds (Triton) and summarises the tracks afterwards, at its own pace (`vigil reid-embed`,
`python -m services.reid`). If it is down or behind, detections still flow; it catches up from its committed offsets.

- Each `DetectionBatch` is rebuilt into the tracked `Detections` and fed, with the frame's RGB pixels, to the
  `ReidStage` (`stage.py`), which publishes `TrackSummary` and `TrackProgress` on `tracks.v1` exactly as it did inside
  infer. Pixels are read only for frames with a tracked box; the rest still count for ended tracks and heartbeats.
- **Ended tracks travel on the record** (`DetectionBatch.ended_track_ids`, added with default [] so older records
  still decode): the tracker drops a track after `track_max_misses` unmatched frames, and only infer's tracker knows
  when that happened. Deriving it here would repeat the tracker's policy (its miss count, and that lost tracks are not
  in the output while the tracker still predicts them) and would close tracks late or wrongly whenever the two drift
  apart; carrying the ids is exact and costs a few bytes on the frames where a track ended.
- A camera without records for `track_idle_ms` (wall time, checked while no records arrive, as infer does) has its
  open tracks ended with final summaries and a heartbeat; on shutdown every open track ends. Infer ends its trackers'
  tracks on the same silence (same `VIGIL_TRACK_IDLE_MS`). If infer was only stalled and a track goes on, it resumes
  its summary (and numbering) rather than starting over (`TrackSummaries`).
- At-least-once through the service runtime: offsets are committed after the summaries are acknowledged; embedder
  outages stall and retry the batch; undecodable messages, inconsistent detections and unreadable frames are
  dead-lettered with the reason (an unreadable frame still ends the tracks it lists).
- Open tracks live in memory, so the committed offset is held back to the first record of the oldest open track
  (`Handler.commit_floor`; at most `reid_replay_max_s` of capture time back): a service killed mid-track reads
  those records again on restart and rebuilds the track, so its summaries, the final one included, still come out.
  Tracks that ended in the replayed span are summarised again with the same ids and sequences (at-least-once;
  ClickHouse keeps one row per track, the highest sequence). A track older than `reid_replay_max_s` at the kill is
  summarised from the replayed part only.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
from pydantic import Field

from services.reid.embedder import TritonEmbedder
from services.reid.stage import ReidStage, ReidStageSettings
from vigil.detections import Detections
from vigil.framestore import FrameNotFound, open_frame_store
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, Handler, Incoming, StreamService
from vigil.runtime import main as run_main
from vigil.telemetry import context_from, tracer
from vigil.topics import DETECTIONS

log = logging.getLogger("vigil.reid.embed")

NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # a frame without tracked boxes: nothing to crop


class ReidEmbedSettings(ReidStageSettings):
    consumer_group: str = "vigil-reid-embed"
    reid_max_batch: int = Field(32, ge=1, le=1000, description="Most detection records per batch (one embedder call).")
    reid_max_wait_ms: int = Field(50, ge=1, description="Longest wait to fill a batch.")
    track_idle_ms: int = Field(5_000, ge=100, description="A camera silent this long (wall time) has all its tracks "
                               "ended, with final summaries.")
    reid_replay_max_s: float = Field(300.0, ge=0, description="Longest span of capture time the committed offset is "
                                     "held back for open tracks (what a restart re-reads to rebuild them); 0 = none.")


class EmbedTracks(Handler):
    def __init__(self, settings: ReidEmbedSettings, stage: ReidStage, store, dead_letters: DeadLetters):
        self.settings, self.stage, self.store, self.dead_letters = settings, stage, store, dead_letters
        self.last_record_wall: dict[str, float] = {}
        self.frames, self.frames_read, self.batches = 0, 0, 0
        # (camera, track id) -> (topic, partition, offset, capture ms) of the record its open track began on
        self.track_start: dict[tuple[str, int], tuple[str, int, int, int]] = {}
        self._tracer = tracer("vigil.reid")

    def _pixels(self, incoming: Incoming, tracked: Detections) -> np.ndarray | None:
        """RGB pixels of the record's frame; NO_PIXELS when none are needed; None (dead-lettered) when unreadable."""
        if not (tracked.tracker_id >= 0).any():
            return NO_PIXELS
        uri = incoming.record["frame"]["uri"]
        try:
            data = self.store.get(uri)
            if not data:  # cv2.imdecode asserts on an empty buffer (cv2.error) instead of returning None
                raise ValueError(f"{uri} is empty (0 bytes)")
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if pixels is None:
                raise ValueError(f"{uri} is not a decodable image")
        except (FrameNotFound, ValueError, OSError) as exc:
            self.dead_letters.send(incoming.message, f"frame unreadable: {exc}")
            return None
        self.frames_read += 1
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)

    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        for incoming in batch:
            record, frame = incoming.record, incoming.record["frame"]
            try:
                tracked = Detections.from_record(record)
            except (KeyError, TypeError, ValueError) as exc:
                self.dead_letters.send(incoming.message, f"inconsistent detections: {exc}")
                continue
            rgb = self._pixels(incoming, tracked)
            if rgb is None:  # dead-lettered; the tracks the tracker ended on it still end
                tracked, rgb = Detections.empty(), NO_PIXELS
            camera_id = frame["camera_id"]
            message = incoming.message
            for track_id in tracked.tracker_id[tracked.tracker_id >= 0]:
                self.track_start.setdefault((camera_id, int(track_id)), (message.topic(), message.partition(),
                                                                         message.offset(), frame["capture_ts_ms"]))
            with self._tracer.start_as_current_span("reid.frame", context=context_from(frame["trace_context"]),
                                                    attributes={"camera.id": camera_id}):
                self.stage.observe(camera_id, frame["capture_ts_ms"], tracked, rgb, record["ended_track_ids"])
            self.last_record_wall[camera_id] = time.monotonic()
            self.frames += 1
        if not self.stage.finish_batch(stop):
            return False
        self._forget_ended()
        self.batches += 1
        return True

    def _forget_ended(self) -> None:
        open_tracks = self.stage.summaries.tracks
        self.track_start = {key: start for key, start in self.track_start.items() if key in open_tracks}

    def commit_floor(self) -> dict[tuple[str, int], int]:
        """The first record of the oldest open track per partition, within `reid_replay_max_s` of capture time."""
        if not self.track_start or self.settings.reid_replay_max_s <= 0:
            return {}
        latest = max(self.stage.last_capture_ms.values(), default=max(s[3] for s in self.track_start.values()))
        horizon = latest - self.settings.reid_replay_max_s * 1000
        floor: dict[tuple[str, int], int] = {}
        for topic, partition, offset, capture_ms in self.track_start.values():
            if capture_ms >= horizon:
                floor[(topic, partition)] = min(offset, floor.get((topic, partition), offset))
        return floor

    def end_idle_tracks(self, idle_ms: int | None = None, resumable: bool = True) -> int:
        """End the open tracks of cameras without records for `idle_ms` (wall time). Returns how many summaries."""
        idle_ms = self.settings.track_idle_ms if idle_ms is None else idle_ms
        published, now = 0, time.monotonic()
        for camera_id, seen in list(self.last_record_wall.items()):
            if (now - seen) * 1000 >= idle_ms:
                published += self.stage.camera_ended(camera_id, resumable=resumable)
                del self.last_record_wall[camera_id]
        self._forget_ended()
        return published

    def idle(self) -> None:
        self.end_idle_tracks()

    def close(self) -> None:
        self.end_idle_tracks(idle_ms=0, resumable=False)  # the service stops: every open track ends here

    def stats(self) -> dict:
        return {"frames": self.frames, "frames_read": self.frames_read, "batches": self.batches, **self.stage.stats()}


class ReidEmbedService(StreamService):
    def __init__(self, settings: ReidEmbedSettings, embedder: TritonEmbedder | None = None):
        self.kafka = KafkaOutput(settings)
        dead_letters = DeadLetters(self.kafka, "reid-embed", settings)
        store = open_frame_store(settings.frame_store_uri)
        stage = ReidStage(settings, self.kafka, store, embedder)  # StartupError when the embedder is not served
        self.embed_tracks = EmbedTracks(settings, stage, store, dead_letters)
        super().__init__(settings, "reid-embed", [DETECTIONS], self.embed_tracks, [self.kafka], dead_letters,
                         settings.consumer_group, batch_size=settings.reid_max_batch,
                         poll_timeout_s=settings.reid_max_wait_ms / 1000, codec=self.kafka.codec,
                         consumer_overrides={"max.poll.interval.ms": 300000})


def main(argv: list[str] | None = None) -> int:
    return run_main("vigil reid-embed", "Crop, embed and summarise the tracks published on detections.v1.",
                    lambda args: ReidEmbedService(ReidEmbedSettings()), argv=argv)
