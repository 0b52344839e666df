"""A multi-camera re-identification scenario built from the real person video, with known identities (used by
`make demo`, load/eval_reid.py and the tests).

The source shows six people, one at a time, walking into a room, standing at a table and leaving (the visit times
below were read off the footage). Three "cameras" are cut from it, each a different view and a later time:

- hall-west:  the left 480 px of the room, as recorded, after 8 s of the empty room (detector warm-up; the empty
  room is real footage from between two visits).
- hall-east:  the right 480 px, 30 s later, warmer and brighter (gamma 0.8, red up, blue down) and slightly blurred.
- hall-north: the whole room scaled to 0.75 and mirrored, 60 s later, cooler and darker (gamma 1.25).

So every person is seen by all three cameras, from different crops, colours and scales, in that order; the time
offsets make the neighbouring people plausible candidates too (transit gating alone cannot tell them apart).
A camera track's true identity is the visit its capture times fall in; tracks of boxes too small to be a person
(reflections at the exit, ~20 px high) have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.scenarios import PERSON_FPS, PERSON_VIDEO, _frames, _write

# Visits (source seconds), read off the footage: each is one person entering at the bottom and leaving at the right.
VISITS = {"p1": (5.0, 20.6), "p2": (22.4, 45.4), "p3": (49.8, 70.6), "p4": (74.0, 87.6), "p5": (91.6, 121.0),
          "p6": (123.0, 137.2)}
MIN_PERSON_HEIGHT = 100  # source pixels
CLIP_VERSION = "v2"  # part of the clip file names: bump when the construction changes (clips are cached)
TRAILER_S = 25.0  # empty room after the footage: the cameras keep streaming, so event time moves past the last track


@dataclass(frozen=True)
class View:
    camera_id: str
    offset_s: float  # source time t is shown at clip time t + offset_s
    x0: int  # crop of the source frame (x range), before scaling
    x1: int
    scale: float
    mirror: bool
    gamma: float
    gains: tuple[float, float, float]  # RGB
    blur: int

    def render(self, rgb: np.ndarray) -> np.ndarray:
        image = rgb[:, self.x0:self.x1]
        if self.scale != 1.0:
            image = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        if self.mirror:
            image = image[:, ::-1]
        image = 255.0 * (image.astype(np.float32) / 255.0) ** self.gamma * np.array(self.gains, np.float32)
        image = np.clip(image, 0, 255).astype(np.uint8)
        if self.blur:
            image = cv2.GaussianBlur(image, (self.blur, self.blur), 0)
        height, width = image.shape[:2]
        return np.ascontiguousarray(image[: height - height % 2, : width - width % 2])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the rendered view."""
        width, height = int((self.x1 - self.x0) * self.scale), int(432 * self.scale)
        return width - width % 2, height - height % 2

    def to_source_height(self, height: float) -> float:
        return height / self.scale


VIEWS = [
    View("hall-west", 8.0, 0, 480, 1.0, False, 1.0, (1.0, 1.0, 1.0), 0),
    View("hall-east", 38.0, 288, 768, 1.0, False, 0.8, (1.12, 1.0, 0.85), 3),
    View("hall-north", 68.0, 0, 768, 0.75, True, 1.25, (0.9, 1.0, 1.15), 0),
]
# Topology: leaving one view to entering the next takes 30 s minus the visit (some are visible in both at once).
LINKS = [
    {"from_camera": "hall-west", "to_camera": "hall-east", "min_transit_s": -10.0, "max_transit_s": 40.0},
    {"from_camera": "hall-east", "to_camera": "hall-north", "min_transit_s": -10.0, "max_transit_s": 40.0},
]


def build(out_dir: Path, views: list[View] = VIEWS) -> dict[str, Path]:
    """Write one clip per view (cached: rebuilt only when missing). Returns camera id → clip path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {view.camera_id: out_dir / f"{view.camera_id}-{CLIP_VERSION}.mp4" for view in views}
    if all(p.exists() for p in paths.values()):
        return paths
    source = _frames(PERSON_VIDEO)
    # The empty room between two visits (source 45.6-49.4 s), played back and forth: real sensor noise, so the
    # background model does not learn a noiseless still image.
    empty = source[456:494] + source[456:494][::-1]
    for view in views:
        count = int(round(view.offset_s * PERSON_FPS))
        padding = [view.render(empty[i % len(empty)]) for i in range(count)]
        tmp = paths[view.camera_id].with_suffix(".part.mp4")
        trailer = [view.render(empty[i % len(empty)]) for i in range(int(TRAILER_S * PERSON_FPS))]
        _write(tmp, padding + [view.render(frame) for frame in source] + trailer, PERSON_FPS)
        tmp.replace(paths[view.camera_id])
    return paths


def camera_config(paths: dict[str, Path], fps: float = 5.0, **camera_options) -> dict:
    """A camera-file dict for the scenario: the three views as cameras of one site, with the topology. Each view is
    one pedestrian zone (it is a room: no traffic rules apply)."""
    sizes = {view.camera_id: view.size for view in VIEWS}
    cameras = [{"id": camera_id, "url": str(path), "fps": fps, "site": "hall", **camera_options,
                "zones": [{"name": "hall", "kind": "pedestrian",
                           "polygon": [[0, 0], [sizes[camera_id][0], 0], list(sizes[camera_id]), [0, sizes[camera_id][1]]]}]}
               for camera_id, path in paths.items()]
    return {"cameras": cameras, "links": LINKS}


def identity(camera_id: str, first_s: float, last_s: float, median_height: float, views: list[View] = VIEWS) -> str | None:
    """The true identity of a track, from its clip times (seconds since the clip started) and box height."""
    view = next(v for v in views if v.camera_id == camera_id)
    if view.to_source_height(median_height) < MIN_PERSON_HEIGHT:
        return None
    middle = (first_s + last_s) / 2 - view.offset_s
    for person, (start, end) in VISITS.items():
        if start - 1.0 <= middle <= end + 1.0:
            return person
    return None
