"""One frame's detections as arrays (after Roboflow supervision's `Detections`): boxes travel together, never as one
message per box. Each detector backend is a small `from_<model>()` adapter into this one type."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Position(str, Enum):
    """Anchor points of a box (supervision's `Position`): where an object "is" for zones and motion."""

    CENTER = "CENTER"
    BOTTOM_CENTER = "BOTTOM_CENTER"  # where a standing person or a car touches the ground


@dataclass
class Detections:
    xyxy: np.ndarray  # (n, 4) float32, pixels
    confidence: np.ndarray  # (n,) float32
    class_id: np.ndarray  # (n,) int32, COCO ids
    tracker_id: np.ndarray = field(default=None)  # (n,) int64, -1 = not (yet) tracked

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        self.tracker_id = (np.full(n, -1, dtype=np.int64) if self.tracker_id is None
                           else np.asarray(self.tracker_id, dtype=np.int64).reshape(-1))
        for name in ("confidence", "class_id", "tracker_id"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Detections.{name} has {len(getattr(self, name))} entries for {n} boxes")
        if n and not ((self.xyxy[:, 2] >= self.xyxy[:, 0]).all() and (self.xyxy[:, 3] >= self.xyxy[:, 1]).all()):
            raise ValueError("Detections.xyxy must hold x1 <= x2 and y1 <= y2")

    def __len__(self) -> int:
        return len(self.xyxy)

    def get_anchors_coordinates(self, anchor: Position | str) -> np.ndarray:
        """One anchor point per box → (n, 2) float32, e.g. `get_anchors_coordinates("BOTTOM_CENTER")`."""
        try:
            anchor = Position(anchor)
        except ValueError:
            raise ValueError(f"unknown anchor {anchor!r}; use one of {[p.value for p in Position]}") from None
        x_center = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        if anchor is Position.CENTER:
            return np.stack([x_center, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)
        return np.stack([x_center, self.xyxy[:, 3]], axis=1)

    @property
    def center(self) -> np.ndarray:
        """Box centres → (n, 2) float32."""
        return self.get_anchors_coordinates(Position.CENTER)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    @classmethod
    def from_padded(cls, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, count: int) -> "Detections":
        """The output layout of Vigil's Triton detectors: per-frame arrays padded to the batch's largest count."""
        return cls(boxes[:count], scores[:count], classes[:count])

    def to_record_fields(self) -> dict:
        """The parallel-array fields of a `DetectionBatch` record."""
        return {
            "xyxy": self.xyxy.reshape(-1).astype(float).tolist(),
            "class_id": self.class_id.astype(int).tolist(),
            "confidence": self.confidence.astype(float).tolist(),
            "track_id": self.tracker_id.astype(int).tolist(),
        }

    @classmethod
    def from_record(cls, record: dict) -> "Detections":
        return cls(np.asarray(record["xyxy"]).reshape(-1, 4), record["confidence"], record["class_id"], record["track_id"])


@dataclass(frozen=True)
class StaticRegion:
    """A part of the picture that differs from the camera's long-term background and has stayed so (ingest's
    static-object cue, services/ingest/quality.py): a stopped vehicle, someone standing still, or something that fell
    on the road. Frame pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    area_px: float  # frame px² of the region's pixels (not of its box)
    static_ms: int  # how long its pixels have differed from the long-term background (the median pixel's)

    @property
    def xyxy(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], dtype=np.float32)


@dataclass(frozen=True)
class VideoQuality:
    """Picture-quality figures of one frame, as ingest measured them (the FrameRef's `quality`; see
    services/ingest/quality.py): what the bad-video rules judge, and the static regions the debris rule judges. The
    shift figures and similarity are None until ingest has learnt the camera's reference view."""

    sharpness: float  # variance of the Laplacian of a 160 px grey copy
    contrast: float  # standard deviation of its grey levels
    still_ms: int = 0  # how long the picture has been frozen (0: live)
    shift_px: float | None = None  # scene shift against the reference, frame pixels
    shift_x_px: float | None = None
    shift_y_px: float | None = None
    similarity: float | None = None  # structure agreement with the reference at zero shift (1: the same view)
    detail: float | None = None  # mean gradient over the reference's (fog, blur, darkness: well below 1)
    static_regions: tuple[StaticRegion, ...] = ()  # empty in records written before FrameRef v3

    @classmethod
    def from_record(cls, record: dict | None) -> "VideoQuality | None":
        if record is None:
            return None
        fields = {name: record.get(name) for name in cls.__dataclass_fields__ if name in record}
        fields["static_regions"] = tuple(StaticRegion(**region) for region in record.get("static_regions") or ())
        return cls(**fields)

    def to_record(self) -> dict:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["static_regions"] = [dict(vars(region)) for region in self.static_regions]
        return record


@dataclass
class DetectionFrame:
    """One camera frame and its detections: what the stream jobs and training read from a `DetectionBatch`."""

    camera_id: str
    ts_ms: int  # capture time, UTC epoch milliseconds
    width: int
    height: int
    detections: Detections
    quality: VideoQuality | None = None  # picture-quality figures (None in records written before FrameRef v2)

    @classmethod
    def from_record(cls, record: dict) -> "DetectionFrame":
        """From a decoded DetectionBatch record (`record["frame"]` holds the frame's camera, capture time, size and
        picture-quality figures)."""
        frame = record["frame"]
        return cls(frame["camera_id"], frame["capture_ts_ms"], frame["width"], frame["height"],
                   Detections.from_record(record), VideoQuality.from_record(frame.get("quality")))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) xyxy boxes → (n, m)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
