"""Vehicle speeds from tracks on the ground plane.

Each track's anchors go through the camera's calibration (homography) into metres on the road, so perspective does
not matter: a pixel far up the image is many more metres than one at the bottom. The speed at a crossing is fitted
over the track's last `window_ms` of points rather than taken from two frames, since one frame's box jitter is a
large share of a frame's travel. The fit is Theil–Sen (the median of pairwise slopes) on x and on y: as exact as
least squares on clean tracks, and a box that jumps for a frame or two (occlusion, a merged box) does not move it.
Without a calibration there is no speed: None, never a pixel-based guess.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.stats import theilslopes

from vigil.geometry import Calibration

WINDOW_MS = 1500  # points used for a speed
MIN_POINTS = 3
MIN_SPAN_MS = 400  # shorter spans turn pixel jitter into km/h
MAX_PLAUSIBLE_KMH = 250.0  # faster is an identity switch of the tracker, not a vehicle
KMH_PER_M_PER_MS = 3600.0  # 1 m/ms = 1000 m/s = 3600 km/h


class TrackSpeeds:
    """Ground-plane trajectories of one camera's tracks, and their speeds."""

    def __init__(self, calibration: Calibration | None, window_ms: int = WINDOW_MS, min_points: int = MIN_POINTS,
                 min_span_ms: int = MIN_SPAN_MS, max_plausible_kmh: float = MAX_PLAUSIBLE_KMH):
        self.calibration, self.window_ms = calibration, window_ms
        self.min_points, self.min_span_ms, self.max_plausible_kmh = min_points, min_span_ms, max_plausible_kmh
        self.tracks: dict[int, deque] = {}  # track id -> (ts_ms, x_m, y_m), the last window_ms

    def observe(self, ts_ms: int, track_ids: np.ndarray, anchors: np.ndarray) -> None:
        """One frame's tracked anchors (track id < 0: not confirmed, ignored), all projected at once."""
        if self.calibration is None:
            return
        track_ids = np.asarray(track_ids).reshape(-1)
        confirmed = track_ids >= 0
        ground = self.calibration.to_ground(np.asarray(anchors, dtype=float).reshape(-1, 2)[confirmed])
        for track_id, (x_m, y_m) in zip(track_ids[confirmed].tolist(), ground.tolist()):
            if not (np.isfinite(x_m) and np.isfinite(y_m)):  # at or above the horizon: not on the road
                continue
            points = self.tracks.setdefault(track_id, deque())
            if points and ts_ms <= points[-1][0]:  # a replayed or late frame
                continue
            points.append((ts_ms, x_m, y_m))
            while ts_ms - points[0][0] > self.window_ms:
                points.popleft()

    def speed_kmh(self, track_id: int) -> float | None:
        """The track's speed over its recent points, or None (no calibration, too few points or too short a span)."""
        points = self.tracks.get(track_id)
        if not points or len(points) < self.min_points or points[-1][0] - points[0][0] < self.min_span_ms:
            return None
        ts_ms, x_m, y_m = np.asarray(points, dtype=float).T
        velocity_m_per_ms = np.hypot(theilslopes(x_m, ts_ms).slope, theilslopes(y_m, ts_ms).slope)
        speed = float(velocity_m_per_ms * KMH_PER_M_PER_MS)
        return speed if speed <= self.max_plausible_kmh else None

    def forget(self, unseen_since_ms: int) -> None:
        """Drop tracks whose last point is older than `unseen_since_ms`."""
        for track_id in [t for t, points in self.tracks.items() if not points or points[-1][0] < unseen_since_ms]:
            del self.tracks[track_id]
