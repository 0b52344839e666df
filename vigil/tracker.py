"""A ByteTrack-style multi-object tracker for one camera: constant-velocity Kalman prediction, IoU association with
scipy's `linear_sum_assignment` in two stages (confident detections first, then weak ones to keep tracks alive),
and stable integer ids for confirmed tracks. Pure arrays in, track ids out; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.detections import Detections, box_iou


class BoxKalman:
    """State (cx, cy, w, h, vx, vy, vw, vh); measurements (cx, cy, w, h). Noise scales with box size, as in ByteTrack."""

    _F = np.eye(8) + np.eye(8, k=4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray, pos_weight: float = 1 / 20, vel_weight: float = 1 / 160):
        self.pos_weight, self.vel_weight = pos_weight, vel_weight
        measurement = _to_cxcywh(box)
        self.mean = np.r_[measurement, np.zeros(4)]
        w, h = measurement[2], measurement[3]
        std = [2 * pos_weight * w, 2 * pos_weight * h, 2 * pos_weight * w, 2 * pos_weight * h,
               10 * vel_weight * w, 10 * vel_weight * h, 10 * vel_weight * w, 10 * vel_weight * h]
        self.cov = np.diag(np.square(std))

    def predict(self) -> None:
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        q = np.square([self.pos_weight * w, self.pos_weight * h, self.pos_weight * w, self.pos_weight * h,
                       self.vel_weight * w, self.vel_weight * h, self.vel_weight * w, self.vel_weight * h])
        self.mean = self._F @ self.mean
        self.cov = self._F @ self.cov @ self._F.T + np.diag(q)

    def update(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        r = np.diag(np.square([self.pos_weight * w, self.pos_weight * h, self.pos_weight * w, self.pos_weight * h]))
        s = self._H @ self.cov @ self._H.T + r
        gain = self.cov @ self._H.T @ np.linalg.inv(s)
        self.mean = self.mean + gain @ (z - self._H @ self.mean)
        self.cov = (np.eye(8) - gain @ self._H) @ self.cov

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])


@dataclass
class Track:
    kalman: BoxKalman
    class_id: int
    hits: int = 1
    misses: int = 0
    track_id: int = -1  # assigned on confirmation
    class_votes: dict = field(default_factory=dict)


@dataclass
class TrackerConfig:
    high_score: float = 0.5  # detections at or above start and extend tracks
    low_score: float = 0.1  # detections between low and high only extend existing tracks
    # update() leaves out untracked detections below this: the detector is asked for boxes down to low_score so that
    # weak ones keep tracks alive (ByteTrack's second stage), and on their own they are noise. None keeps every box.
    report_score: float | None = 0.3
    match_iou: float = 0.3  # minimum IoU to associate in the first stage
    low_match_iou: float = 0.5
    min_hits: int = 2  # consecutive matches before a track gets an id
    max_misses: int = 10  # frames a track survives without a match


def detect_and_track(detector, tracker: ByteTracker, camera_id: str, rgb: np.ndarray) -> Detections:
    """One frame through an in-process detector (`process(camera_id, rgb, min_score)`) and the camera's tracker, as
    infer does it: the detector is asked for boxes down to the tracker's low score."""
    return tracker.update(Detections(*detector.process(camera_id, rgb, min_score=tracker.config.low_score)))


class ByteTracker:
    def __init__(self, config: TrackerConfig | None = None, first_id: int = 1):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._ids = count(first_id)
        self.ended: list[int] = []  # confirmed track ids dropped by the latest update()

    def update(self, detections: Detections) -> Detections:
        """Associate one frame's detections; returns them with `tracker_id` filled (-1 for unconfirmed), less the
        untracked ones under `report_score`."""
        cfg = self.config
        self.ended = []
        for track in self.tracks:
            track.kalman.predict()
        ids = np.full(len(detections), -1, dtype=np.int64)
        high = np.flatnonzero(detections.confidence >= cfg.high_score)
        low = np.flatnonzero((detections.confidence >= cfg.low_score) & (detections.confidence < cfg.high_score))

        confirmed = [i for i, t in enumerate(self.tracks) if t.track_id >= 0]
        tentative = [i for i, t in enumerate(self.tracks) if t.track_id < 0]
        matched_tracks: set[int] = set()

        pairs, left_tracks, left_high = self._associate(confirmed, high, detections, cfg.match_iou)
        pairs2, left_tracks, _ = self._associate(left_tracks, low, detections, cfg.low_match_iou)
        pairs3, _, new_high = self._associate(tentative, left_high, detections, cfg.match_iou)
        for track_index, det_index in pairs + pairs2 + pairs3:
            track = self.tracks[track_index]
            track.kalman.update(detections.xyxy[det_index])
            track.hits += 1
            track.misses = 0
            cls = int(detections.class_id[det_index])
            track.class_votes[cls] = track.class_votes.get(cls, 0) + 1
            track.class_id = max(track.class_votes, key=track.class_votes.get)
            if track.track_id < 0 and track.hits >= cfg.min_hits:
                track.track_id = next(self._ids)
            matched_tracks.add(track_index)
            ids[det_index] = track.track_id

        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.misses += 1
                if track.track_id < 0 or track.misses > cfg.max_misses:
                    if track.track_id >= 0:
                        self.ended.append(track.track_id)
                    continue  # tentative tracks die on their first miss; confirmed ones after max_misses
            survivors.append(track)
        for det_index in new_high:
            cls = int(detections.class_id[det_index])
            survivors.append(Track(BoxKalman(detections.xyxy[det_index]), cls, class_votes={cls: 1}))
        self.tracks = survivors
        keep = slice(None) if cfg.report_score is None else (ids >= 0) | (detections.confidence >= cfg.report_score)
        return Detections(detections.xyxy[keep], detections.confidence[keep], detections.class_id[keep], ids[keep])

    def end_all(self) -> list[int]:
        """End every track (the camera went quiet); returns the confirmed ids that ended."""
        ended = [t.track_id for t in self.tracks if t.track_id >= 0]
        self.tracks = []
        return ended

    def _associate(self, track_indices, det_indices, detections, min_iou):
        """Hungarian assignment on 1 - IoU; returns (pairs, unmatched tracks, unmatched detections)."""
        track_indices, det_indices = list(track_indices), list(det_indices)
        if not track_indices or not det_indices:
            return [], track_indices, det_indices
        predicted = np.array([self.tracks[i].kalman.box for i in track_indices])
        iou = box_iou(predicted, detections.xyxy[det_indices])
        rows, cols = linear_sum_assignment(-iou)
        pairs = [(track_indices[r], det_indices[c]) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
        used_t = {p[0] for p in pairs}
        used_d = {p[1] for p in pairs}
        return pairs, [t for t in track_indices if t not in used_t], [d for d in det_indices if d not in used_d]
