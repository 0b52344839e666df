"""The label store: human-verified boxes per frame, which detector adaptation uses ahead of pseudo-labels.

`vigil review-import` puts the corrected labels of a review export here (`source="review"`). One JSON file per frame:

    <root>/<camera_id, %-quoted>/<capture_ts_ms, 13 digits>-<sha1(uri)[:16]>.json

so a camera's frames are listed (and filtered by capture time) from the file names alone, and a frame's labels are
replaced as a whole when the same frame uri is put again. Writes are atomic (a temporary file in the same folder,
fsync, rename): readers see the old labels or the new ones, never half a file. A frame with zero boxes is a
verified-empty frame (a valid negative), kept like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

FORMAT_VERSION = 1


@dataclass(eq=False)
class LabeledFrame:
    uri: str  # frame-store uri of the image
    camera_id: str
    capture_ts_ms: int
    width: int
    height: int
    xyxy: np.ndarray  # (n, 4) float32 pixels
    class_id: np.ndarray  # (n,) int32 COCO ids (0 person, 1 bicycle, 2 car, 3 motorcycle, 5 bus, 7 truck)
    source: str  # "review"

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        self.capture_ts_ms, self.width, self.height = int(self.capture_ts_ms), int(self.width), int(self.height)

    def __eq__(self, other) -> bool:
        if not isinstance(other, LabeledFrame):
            return NotImplemented
        return ((self.uri, self.camera_id, self.capture_ts_ms, self.width, self.height, self.source)
                == (other.uri, other.camera_id, other.capture_ts_ms, other.width, other.height, other.source)
                and np.array_equal(self.xyxy, other.xyxy) and np.array_equal(self.class_id, other.class_id))

    __hash__ = None

    def validate(self) -> None:
        """Raise ValueError when the frame is not storable (checked for every frame before `put` writes any)."""
        if not self.uri or not self.camera_id:
            raise ValueError("a labelled frame needs a uri and a camera_id")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.uri}: image size {self.width}x{self.height} is not positive")
        if len(self.class_id) != len(self.xyxy):
            raise ValueError(f"{self.uri}: {len(self.class_id)} class ids for {len(self.xyxy)} boxes")
        if len(self.xyxy) and not np.isfinite(self.xyxy).all():
            raise ValueError(f"{self.uri}: boxes must be finite")
        if len(self.xyxy) and not ((self.xyxy[:, 2] > self.xyxy[:, 0]).all() and (self.xyxy[:, 3] > self.xyxy[:, 1]).all()):
            raise ValueError(f"{self.uri}: boxes must hold x1 < x2 and y1 < y2")


def default_root(data_dir: Path) -> Path:
    """Where the platform keeps its label store: `<data_dir>/labels`."""
    return Path(data_dir) / "labels"


def _camera_dir_name(camera_id: str) -> str:
    name = quote(camera_id, safe="")
    if name in ("", ".", ".."):
        raise ValueError(f"camera id {camera_id!r} cannot name a label folder")
    return name


def _uri_key(uri: str) -> str:
    return hashlib.sha1(uri.encode()).hexdigest()[:16]


class LabelStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _camera_dir(self, camera_id: str) -> Path:
        return self.root / _camera_dir_name(camera_id)

    def frames(self, camera_id: str, since_ms: int | None = None, until_ms: int | None = None) -> list[LabeledFrame]:
        """A camera's labelled frames with since_ms <= capture time < until_ms, in capture order."""
        folder = self._camera_dir(camera_id)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*.json"):
            try:
                ts = int(path.name.split("-", 1)[0])
            except ValueError:
                continue
            if (since_ms is not None and ts < since_ms) or (until_ms is not None and ts >= until_ms):
                continue
            data = json.loads(path.read_text())
            found.append(LabeledFrame(
                uri=data["uri"], camera_id=data["camera_id"], capture_ts_ms=data["capture_ts_ms"],
                width=data["width"], height=data["height"],
                xyxy=np.asarray([b["xyxy"] for b in data["boxes"]], dtype=np.float32).reshape(-1, 4),
                class_id=np.asarray([b["class_id"] for b in data["boxes"]], dtype=np.int32),
                source=data["source"]))
        found.sort(key=lambda f: (f.capture_ts_ms, f.uri))
        return found

    def put(self, frames: list[LabeledFrame]) -> int:
        """Store frames, each replacing earlier labels of the same uri; returns how many were written. Every frame is
        validated before the first is written."""
        for frame in frames:
            frame.validate()
        uris = [f.uri for f in frames]
        if len(set(uris)) != len(uris):
            raise ValueError("the same frame uri is given twice in one put")
        for frame in frames:
            folder = self._camera_dir(frame.camera_id)
            folder.mkdir(parents=True, exist_ok=True)
            key = _uri_key(frame.uri)
            path = folder / f"{frame.capture_ts_ms:013d}-{key}.json"
            data = {
                "version": FORMAT_VERSION, "uri": frame.uri, "camera_id": frame.camera_id,
                "capture_ts_ms": frame.capture_ts_ms, "width": frame.width, "height": frame.height,
                "source": frame.source, "stored_ts_ms": int(time.time() * 1000),
                "boxes": [{"xyxy": [round(float(v), 3) for v in box], "class_id": int(cls)}
                          for box, cls in zip(frame.xyxy, frame.class_id)],
            }
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(data, handle, indent=1)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            # the same uri stored earlier under another capture time or camera: the new labels replace it
            for old in self.root.glob(f"*/*-{key}.json"):
                if old != path and json.loads(old.read_text()).get("uri") == frame.uri:
                    old.unlink(missing_ok=True)
        return len(frames)

    def cameras(self) -> list[str]:
        """Cameras that have labelled frames."""
        if not self.root.is_dir():
            return []
        return sorted(unquote(p.name) for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.json")))
