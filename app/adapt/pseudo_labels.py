"""Pseudo-labels for a camera, from what the system already knows about it.

The pretrained detector draws tight boxes round an overhead car but calls it "cell phone" or "suitcase": the boxes
are right, the classes are wrong. So the labeller runs the pretrained model over a camera's frames in capture order
with *every* COCO class at a low threshold (class-agnostic NMS), runs the motion detector beside it, tracks the
boxes, and then decides per track:
- a **vehicle** track moves (motion blobs agree with its boxes, or it travels) through the camera's traffic lanes:
  every box of it is labelled with the track's vehicle class (its majority vote among bicycle, car, motorcycle, bus,
  truck when the model calls it a vehicle on most of its boxes; else car, as on top-down views, where the model's
  few vehicle votes are noise);
- a **person** track is one whose votes are mostly person;
- everything else the model saw (short tracks, unmatched low scores) becomes an *ignore* region: not taught as
  background, not taught as an object.
Frames where neither the model nor motion sees anything are background negatives. Frames an operator corrected
(`vigil review-import`, the label store) replace the pseudo-labels of the same frame: reviewed labels come first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from vigil.detections import Detections, box_iou
from vigil.tracker import ByteTracker, TrackerConfig

PERSON = 0
VEHICLES = (1, 2, 3, 5, 7)
ALL_CLASSES = ",".join(str(c) for c in range(80))


def candidates(detector, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's candidates of every COCO class at `threshold` or more, after class-agnostic NMS (a "cell phone"
    and a "car" box on one object are one object) → (xyxy, scores, classes)."""
    import cv2

    xyxy, class_scores = detector.candidates(rgb)
    classes = class_scores.argmax(1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = scores >= threshold
    xyxy, scores, classes = xyxy[keep], scores[keep], classes[keep].astype(np.int32)
    if len(xyxy):
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1).tolist()
        kept = np.asarray(cv2.dnn.NMSBoxes(xywh, scores.astype(float).tolist(), threshold, 0.5), dtype=int).reshape(-1)
        xyxy, scores, classes = xyxy[kept], scores[kept], classes[kept]
    return xyxy.reshape(-1, 4), scores, classes


@dataclass
class LabelledFrame:
    capture_ts_ms: int
    rgb: np.ndarray
    xyxy: np.ndarray  # (n, 4) float32
    class_id: np.ndarray  # (n,) int32, COCO ids
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (m, 4)
    source: str = "pseudo"  # or "review"


@dataclass
class _Seen:
    capture_ts_ms: int
    rgb: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    track_ids: np.ndarray
    moving: np.ndarray  # per box: a motion blob agrees with it


@dataclass
class PseudoLabelConfig:
    candidate_threshold: float = 0.15  # pretrained score (objectness x class) of any COCO class
    motion_iou: float = 0.3  # a motion blob "agrees" with a box at this IoU
    min_track_frames: int = 3
    min_moving_fraction: float = 0.3  # of a vehicle track's boxes that agree with motion...
    min_travel_px: float = 40.0  # ...or how far its centre travels
    min_lane_fraction: float = 0.5  # of its box anchors inside the camera's lanes (when the camera has lanes)
    min_person_votes: float = 0.5
    min_vehicle_votes: float = 0.5  # share of a vehicle track's boxes the model must call a vehicle for its class


class PseudoLabeller:
    def __init__(self, detector, motion, lanes=None, config: PseudoLabelConfig | None = None):
        """`detector`: the pretrained model in-process, made with classes=ALL_CLASSES; `motion`: the motion detector;
        `lanes`: the camera's traffic lanes (objects with `.contains(points)`), None if it has none."""
        self.detector, self.motion, self.lanes = detector, motion, lanes or []
        self.config = config or PseudoLabelConfig()
        self.tracker = ByteTracker(TrackerConfig(high_score=0.3, low_score=0.1, min_hits=2, max_misses=5,
                                                  report_score=None))  # ids stay aligned with the candidates
        self.seen: list[_Seen] = []
        self._decided: dict[int, int | None] | None = None  # per-track decisions, made once all frames are seen

    def observe(self, camera_id: str, capture_ts_ms: int, rgb: np.ndarray) -> None:
        xyxy, scores, classes = candidates(self.detector, rgb, self.config.candidate_threshold)
        motion_boxes, _, _ = self.motion.process(camera_id, rgb)
        moving = (box_iou(xyxy, np.asarray(motion_boxes, np.float32).reshape(-1, 4)).max(1) >= self.config.motion_iou
                  if len(xyxy) and len(motion_boxes) else np.zeros(len(xyxy), bool))
        # the tracker sees one class (objects, not COCO guesses), so a class flip does not split a track
        tracked = self.tracker.update(Detections(xyxy, scores, np.zeros(len(xyxy), np.int32)))
        self.seen.append(_Seen(capture_ts_ms, rgb, xyxy, scores, classes.astype(np.int32), tracked.tracker_id, moving))
        self._decided = None

    def _track_classes(self) -> dict[int, int | None]:
        """Track id → COCO class to teach, or None (ignore)."""
        if self._decided is None:
            self._decided = self._decide()
        return self._decided

    def _decide(self) -> dict[int, int | None]:
        boxes_of: dict[int, list] = defaultdict(list)
        for seen in self.seen:
            for box, cls, tid, moving in zip(seen.boxes, seen.classes, seen.track_ids, seen.moving):
                if tid >= 0:
                    boxes_of[int(tid)].append((box, int(cls), bool(moving)))
        decided: dict[int, int | None] = {}
        c = self.config
        for tid, items in boxes_of.items():
            if len(items) < c.min_track_frames:
                decided[tid] = None
                continue
            boxes = np.stack([b for b, _, _ in items])
            votes = Counter(cls for _, cls, _ in items)
            if votes[PERSON] / len(items) >= c.min_person_votes:
                decided[tid] = PERSON
                continue
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            travel = float(np.linalg.norm(centres.max(0) - centres.min(0)))
            moving = np.mean([m for _, _, m in items])
            in_lanes = (np.mean(np.any([lane.contains(centres) for lane in self.lanes], axis=0))
                        if self.lanes else 1.0)
            if (moving >= c.min_moving_fraction or travel >= c.min_travel_px) and in_lanes >= c.min_lane_fraction:
                vehicle_votes = {cls: n for cls, n in votes.items() if cls in VEHICLES}
                # the model's own vehicle class counts only where it names a vehicle for most of the track
                trusted = sum(vehicle_votes.values()) >= c.min_vehicle_votes * len(items)
                decided[tid] = max(vehicle_votes, key=vehicle_votes.get) if trusted else 2
            else:
                decided[tid] = None
        return decided

    def labels(self) -> list[LabelledFrame]:
        decided = self._track_classes()
        frames = []
        for seen in self.seen:
            keep, ignore = [], []
            for i, tid in enumerate(seen.track_ids):
                cls = decided.get(int(tid)) if tid >= 0 else None
                (keep if cls is not None else ignore).append(i)
            classes = np.array([decided[int(seen.track_ids[i])] for i in keep], np.int32)
            frames.append(LabelledFrame(seen.capture_ts_ms, seen.rgb, seen.boxes[keep].reshape(-1, 4), classes,
                                        seen.boxes[ignore].reshape(-1, 4)))
        return frames

    def summary(self) -> dict:
        decided = self._track_classes()
        return {"frames": len(self.seen), "tracks": len(decided),
                "tracks_by_class": dict(Counter(str(v) for v in decided.values() if v is not None)),
                "tracks_ignored": sum(v is None for v in decided.values()),
                "boxes": sum(len(f.xyxy) for f in self.labels())}


def merge_reviewed(frames: list[LabelledFrame], reviewed: dict[int, LabelledFrame]) -> list[LabelledFrame]:
    """Reviewed frames (by capture time) replace the pseudo-labels of the same frame; others are added."""
    merged = [reviewed.get(f.capture_ts_ms, f) for f in frames]
    seen = {f.capture_ts_ms for f in frames}
    return merged + [f for ts, f in sorted(reviewed.items()) if ts not in seen]
