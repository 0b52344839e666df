"""Track summaries for re-identification: per-track accumulation of times, positions, class votes, appearance
embeddings and the best crop, turned into `TrackSummary` records when a track ends and periodically while it lasts.
Pure bookkeeping over arrays; the re-ID stage (`stage.py`, run by the embed service `service.py`) does the embedding calls
and the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil.detections import Detections
from vigil.reid_embedding import crop_boxes, robust_mean


@dataclass
class TrackState:
    camera_id: str
    track_id: int
    first_seen_ms: int
    last_seen_ms: int
    entry_xy: tuple[float, float]
    exit_xy: tuple[float, float] = (0.0, 0.0)
    detections: int = 0
    class_votes: dict = field(default_factory=dict)
    embeddings: list = field(default_factory=list)
    best_quality: float = -1.0
    best_crop: np.ndarray | None = None  # RGB pixels of the best box, original resolution
    sequence: int = 0
    last_summary_ms: int = 0


class TrackSummaries:
    """Feed it every tracked frame (`observe`), embed the crops it asks for (`pending_crops` → `add_embeddings`), and
    collect summaries of tracks that ended (`end`) or have run for `interval_ms` since their last summary (`due`).

    A track ended only because its camera fell silent (`end(..., resumable=True)`) is remembered (the newest
    `max_resumable`): if the tracker had not dropped it and it shows up again, it continues where it stopped, with its
    summary numbering, instead of starting over as sequence 0 of the same track id."""

    def __init__(self, embed_every: int = 2, max_samples: int = 32, interval_ms: int = 30_000, max_crop_side: int = 256,
                 max_resumable: int = 10_000):
        self.embed_every, self.max_samples, self.interval_ms = embed_every, max_samples, interval_ms
        self.max_crop_side, self.max_resumable = max_crop_side, max_resumable
        self.tracks: dict[tuple[str, int], TrackState] = {}
        self._pending: list[tuple[tuple[str, int], np.ndarray]] = []
        self._resumable: dict[tuple[str, int], TrackState] = {}

    def observe(self, camera_id: str, ts_ms: int, tracked: Detections, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        wanted, boxes = [], []
        for box, confidence, class_id, track_id in zip(tracked.xyxy, tracked.confidence, tracked.class_id, tracked.tracker_id):
            if track_id < 0:
                continue
            key = (camera_id, int(track_id))
            centre = (float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2))
            state = self.tracks.get(key)
            if state is None and key in self._resumable:
                state = self.tracks[key] = self._resumable.pop(key)
            elif state is None:
                state = self.tracks[key] = TrackState(camera_id, int(track_id), ts_ms, ts_ms, centre, last_summary_ms=ts_ms)
            state.last_seen_ms, state.exit_xy = max(state.last_seen_ms, ts_ms), centre
            state.detections += 1
            state.class_votes[int(class_id)] = state.class_votes.get(int(class_id), 0) + 1
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            inside = x1 > 1 and y1 > 1 and x2 < width - 2 and y2 < height - 2  # whole object in view
            quality = (x2 - x1) * (y2 - y1) * float(confidence) * (1.0 if inside else 0.25)
            if quality > state.best_quality and x2 - x1 >= 4 and y2 - y1 >= 4:
                state.best_quality = quality
                crop = rgb[max(0, y1):y2, max(0, x1):x2]
                scale = self.max_crop_side / max(crop.shape[:2])
                state.best_crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
            if (state.detections - 1) % self.embed_every == 0:
                wanted.append(key)
                boxes.append(box)
        if wanted:
            for key, crop in zip(wanted, crop_boxes(rgb, np.array(boxes))):
                self._pending.append((key, crop))

    def pending_crops(self) -> np.ndarray | None:
        return np.stack([crop for _, crop in self._pending]) if self._pending else None

    def pending_keys(self) -> list[tuple[str, int]]:
        """The (camera, track) of each pending crop, in `pending_crops` order."""
        return [key for key, _ in self._pending]

    def add_embeddings(self, embeddings: np.ndarray) -> None:
        for (key, _), vector in zip(self._pending, embeddings):
            state = self.tracks.get(key)
            if state is None:
                continue
            if len(state.embeddings) < self.max_samples:
                state.embeddings.append(np.asarray(vector, np.float32))
            else:  # keep a spread over the whole track: replace a pseudo-random old sample
                state.embeddings[(state.detections * 7919) % self.max_samples] = np.asarray(vector, np.float32)
        self._pending = []

    def drop_pending(self) -> None:
        self._pending = []

    def end(self, camera_id: str, track_ids: list[int], resumable: bool = False) -> list[TrackState]:
        """The open tracks among `track_ids`, removed. `resumable`: they may come back (see the class doc)."""
        keys = [(camera_id, int(t)) for t in track_ids]
        for key in keys:
            self._resumable.pop(key, None)  # the tracker dropped it for good
        ended = [self.tracks.pop(key) for key in keys if key in self.tracks]
        if resumable:
            for state in ended:
                self._resumable[(state.camera_id, state.track_id)] = state
            while len(self._resumable) > self.max_resumable:
                del self._resumable[next(iter(self._resumable))]
        return ended

    def open_track_ids(self, camera_id: str) -> list[int]:
        return [track_id for cam, track_id in self.tracks if cam == camera_id]

    def due(self, camera_id: str, now_ms: int) -> list[TrackState]:
        """Live tracks of camera_id whose last summary is `interval_ms` old (by capture time)."""
        return [s for (cam, _), s in self.tracks.items()
                if cam == camera_id and now_ms - s.last_summary_ms >= self.interval_ms]

    def record(self, state: TrackState, final: bool, embedder: str, crop_uri: str | None, emitted_ms: int) -> dict:
        """The TrackSummary record for `state` (advances its sequence)."""
        embedding = robust_mean(np.array(state.embeddings)) if state.embeddings else np.zeros(0, np.float32)
        record = dict(summary_id=f"{state.camera_id}:{state.track_id}:{state.sequence}", camera_id=state.camera_id,
                      track_id=state.track_id, sequence=state.sequence, final=final,
                      class_id=max(state.class_votes, key=state.class_votes.get), first_seen_ms=state.first_seen_ms,
                      last_seen_ms=state.last_seen_ms, detections=state.detections, entry_xy=list(state.entry_xy),
                      exit_xy=list(state.exit_xy), embedding=embedding.tolist(), embedding_samples=len(state.embeddings),
                      embedder=embedder, best_crop_uri=crop_uri, emitted_ts_ms=emitted_ms)
        state.sequence += 1
        state.last_summary_ms = state.last_seen_ms
        return record
