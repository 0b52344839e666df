"""Motion as a gate in front of the detector: a camera whose picture does not change and that has no live track
needs no inference. The gate compares each frame with the camera's previous one at low resolution (grey, blurred,
160 px wide): when fewer than `min_changed` of the pixels changed by more than `pixel_threshold` levels and the
camera's tracker holds no track, the frame is answered with no detections without calling Triton. A camera with a
live track is always detected, so a vehicle that stops stays detected for as long as it stands there (the neural
detector sees it; motion never decides what is there). Every `max_skip_s` of capture time a frame goes through
anyway, so something that arrived unseen (e.g. during a camera's first frames) is picked up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class GateSettings:
    enabled: bool = True
    width: int = 160
    pixel_threshold: int = 18
    min_changed: float = 0.002
    max_skip_s: float = 2.0


class MotionGate:
    def __init__(self, settings: GateSettings | None = None):
        self.settings = settings or GateSettings()
        self.previous: dict[str, np.ndarray] = {}
        self.last_inferred_ms: dict[str, int] = {}
        self.skipped: Counter = Counter()
        self.passed: Counter = Counter()

    def _small(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        width = min(self.settings.width, w)
        grey = cv2.cvtColor(cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def changed(self, camera_id: str, rgb: np.ndarray) -> float:
        """Share of pixels that changed since the camera's previous frame (1.0 for its first frame)."""
        small = self._small(rgb)
        previous = self.previous.get(camera_id)
        self.previous[camera_id] = small
        if previous is None or previous.shape != small.shape:
            return 1.0
        return float((cv2.absdiff(small, previous) > self.settings.pixel_threshold).mean())

    def needs_inference(self, camera_id: str, capture_ts_ms: int, rgb: np.ndarray, live_tracks: int) -> bool:
        if not self.settings.enabled:
            return True
        changed = self.changed(camera_id, rgb)
        last = self.last_inferred_ms.get(camera_id)
        overdue = last is None or capture_ts_ms - last >= self.settings.max_skip_s * 1000 or capture_ts_ms < last
        if live_tracks or changed >= self.settings.min_changed or overdue:
            self.last_inferred_ms[camera_id] = capture_ts_ms
            self.passed[camera_id] += 1
            return True
        self.skipped[camera_id] += 1
        return False

    def forget(self, camera_id: str) -> None:
        self.previous.pop(camera_id, None)
        self.last_inferred_ms.pop(camera_id, None)

    def stats(self) -> dict:
        passed, skipped = sum(self.passed.values()), sum(self.skipped.values())
        return {"gate_inferred": passed, "gate_skipped": skipped,
                "gate_skipped_share": round(skipped / (passed + skipped), 3) if passed + skipped else 0.0}
