"""A synthetic two-lane road seen in perspective, and vehicles driven along it at known speeds, as DetectionFrames.

Ground frame: x across the road (0..7 m, lane 1 is 0..3.5 m), y along it (0 m at the bottom of the image, 60 m near
the horizon). Vehicles drive towards the camera (y decreasing, down the image) unless told otherwise.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vigil.detections import DetectionFrame, Detections
from vigil.geometry import Calibration, CountLine, DetectionZone, Lane, TrafficGeometry

CAMERA = "cam-1"
FRAME_MS = 100  # 10 fps
CALIBRATION = Calibration(image_points=[(300, 700), (980, 700), (700, 200), (580, 200)],
                          ground_points_m=[(0, 0), (7, 0), (7, 60), (0, 60)])
LINE_Y_M = 20.0
ZONE_Y_M = (8.0, 13.0)


def image(points_m) -> list[tuple[float, float]]:
    return [tuple(p) for p in CALIBRATION.to_image(np.asarray(points_m, dtype=float)).tolist()]


def rectangle_m(x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return image([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def road(calibrated: bool = True, free_flow_kmh: float | None = None, zones: bool = True) -> TrafficGeometry:
    """Lane 1 (0..3.5 m) and lane 2 (3.5..7 m), each with a count line at 20 m and (optionally) a 5 m loop."""
    lanes, lines, loops = [], [], []
    for number, (x0, x1) in enumerate([(0.0, 3.5), (3.5, 7.0)], start=1):
        lanes.append(Lane(name=f"lane{number}", number=number, polygon=rectangle_m(x0, x1, 0, 60),
                          direction=(0, 1), free_flow_kmh=free_flow_kmh))
        start, end = image([(x0, LINE_Y_M), (x1, LINE_Y_M)])
        lines.append(CountLine(name=f"line{number}", lane=f"lane{number}", start=start, end=end, positive=(0, 1)))
        loops.append(DetectionZone(name=f"loop{number}", lane=f"lane{number}", polygon=rectangle_m(x0, x1, *ZONE_Y_M)))
    return TrafficGeometry(lanes=lanes, count_lines=lines, detection_zones=loops if zones else [],
                           calibration=CALIBRATION if calibrated else None)


def drive(track_id: int, class_id: int, speed_kmh: float, start_ms: int, x_m: float = 1.75, from_y_m: float = 50.0,
          to_y_m: float = -2.0, noise_px: float = 0.0, seed: int = 0) -> list[tuple[int, int, int, float, float]]:
    """A vehicle at constant speed from `from_y_m` to `to_y_m`, one point per frame → (ts_ms, track, class, x, y)."""
    speed_m_per_ms = speed_kmh / 3600
    sign = 1 if to_y_m > from_y_m else -1
    duration_ms = abs(to_y_m - from_y_m) / speed_m_per_ms
    ts_ms = np.arange(start_ms, start_ms + duration_ms, FRAME_MS)
    ground = np.c_[np.full(len(ts_ms), x_m), from_y_m + sign * speed_m_per_ms * (ts_ms - start_ms)]
    pixels = CALIBRATION.to_image(ground) + np.random.default_rng(seed).normal(0, noise_px, (len(ts_ms), 2))
    return [(int(t), track_id, class_id, float(x), float(y)) for t, (x, y) in zip(ts_ms, pixels)]


def stay(track_id: int, class_id: int, x: float, y: float, start_ms: int, end_ms: int):
    """A vehicle standing at pixel (x, y) from start_ms to end_ms (exclusive)."""
    return [(int(t), track_id, class_id, x, y) for t in range(start_ms, end_ms, FRAME_MS)]


def frames(points, start_ms: int, end_ms: int, camera_id: str = CAMERA) -> list[DetectionFrame]:
    """One DetectionFrame every FRAME_MS over [start_ms, end_ms), with the points at each tick (empty frames too)."""
    by_ts = defaultdict(list)
    for ts_ms, track_id, class_id, x, y in points:
        by_ts[ts_ms].append((track_id, class_id, x, y))
    result = []
    for ts_ms in range(start_ms, end_ms, FRAME_MS):
        boxes = by_ts.get(ts_ms, [])
        xyxy = [(x - 20, y - 30, x + 20, y) for _, _, x, y in boxes]  # bottom centre = the point
        detections = Detections(np.asarray(xyxy, dtype=float).reshape(-1, 4), np.full(len(boxes), 0.9),
                                [c for _, c, _, _ in boxes], [t for t, _, _, _ in boxes])
        result.append(DetectionFrame(camera_id, ts_ms, 1280, 720, detections))
    return result
