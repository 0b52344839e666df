"""Scene features of one camera over one event-time window, from its DetectionBatch records.

The vector (fixed layout, named cells so events can say which cells contributed most):
  occupancy grid per class (GRID x GRID cells, fraction of frames in which a box centre fell in the cell),
  mean object count per class, speed histogram and heading histogram of tracked objects (px/s, 8 compass bins),
  mean dwell of the tracks seen (s since first seen, capped).
"""

from __future__ import annotations

import math

import numpy as np

from vigil.detections import DetectionFrame

CLASSES = {0: "person", 2: "car"}
GRID = 4
SPEED_BINS = (0.0, 5.0, 20.0, 60.0, 150.0, math.inf)  # px/s
HEADINGS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
DWELL_CAP_S = 60.0
COLD_WINDOWS = 5  # windows after a camera (re)appears whose dwell times are still unknown


def feature_names() -> list[str]:
    names = [f"occupancy:{name}:r{r}c{c}" for name in CLASSES.values() for r in range(GRID) for c in range(GRID)]
    names += [f"count:{name}" for name in CLASSES.values()]
    names += [f"speed:{SPEED_BINS[i]:g}-{SPEED_BINS[i + 1]:g}" for i in range(len(SPEED_BINS) - 1)]
    names += [f"heading:{h}" for h in HEADINGS]
    names += ["dwell"]
    return names


FEATURES = feature_names()


def scene_features(frames: list[DetectionFrame], first_seen_ms: dict[int, int] | None = None) -> np.ndarray:
    """Feature vector of one window (frames in any order). `first_seen_ms` gives track start times from before the
    window (for dwell); tracks first seen inside the window start there."""
    vector = np.zeros(len(FEATURES), dtype=np.float32)
    if not frames:
        return vector
    frames = sorted(frames, key=lambda f: f.ts_ms)
    centres = [frame.detections.center for frame in frames]
    offset = 0
    for class_id in CLASSES:
        grid = np.zeros((GRID, GRID), dtype=np.float32)
        for frame, centre in zip(frames, centres):
            keep = frame.detections.class_id == class_id
            if not keep.any():
                continue
            cols = np.clip((centre[keep, 0] / max(frame.width, 1) * GRID).astype(int), 0, GRID - 1)
            rows = np.clip((centre[keep, 1] / max(frame.height, 1) * GRID).astype(int), 0, GRID - 1)
            cell = np.zeros((GRID, GRID), dtype=np.float32)
            cell[rows, cols] = 1.0
            grid += cell
        vector[offset:offset + GRID * GRID] = (grid / len(frames)).reshape(-1)
        offset += GRID * GRID
    for class_id in CLASSES:
        vector[offset] = np.mean([(f.detections.class_id == class_id).sum() for f in frames])
        offset += 1
    # per-track motion inside the window
    paths: dict[int, list[tuple[int, float, float]]] = {}
    for frame, centre in zip(frames, centres):
        for (x, y), track in zip(centre, frame.detections.tracker_id):
            if track >= 0:
                paths.setdefault(int(track), []).append((frame.ts_ms, float(x), float(y)))
    speed_hist = np.zeros(len(SPEED_BINS) - 1, dtype=np.float32)
    heading_hist = np.zeros(len(HEADINGS), dtype=np.float32)
    dwell = []
    end_ms = frames[-1].ts_ms
    for track, path in paths.items():
        start = (first_seen_ms or {}).get(track, path[0][0])
        dwell.append(min((end_ms - start) / 1000.0, DWELL_CAP_S))
        if len(path) < 2 or path[-1][0] == path[0][0]:
            continue
        dt = (path[-1][0] - path[0][0]) / 1000.0
        dx, dy = path[-1][1] - path[0][1], path[-1][2] - path[0][2]
        speed = math.hypot(dx, dy) / dt
        speed_hist[np.searchsorted(SPEED_BINS, speed, side="right") - 1] += 1
        if speed >= SPEED_BINS[1]:
            angle = math.atan2(-dy, dx)  # image y grows downwards
            heading_hist[int(round(angle / (math.pi / 4))) % 8] += 1
    total = max(len(paths), 1)
    vector[offset:offset + len(speed_hist)] = speed_hist / total
    offset += len(speed_hist)
    vector[offset:offset + len(heading_hist)] = heading_hist / total
    offset += len(heading_hist)
    vector[offset] = (np.mean(dwell) / DWELL_CAP_S) if dwell else 0.0
    return vector


def window_start(ts_ms: int, window_ms: int) -> int:
    """Start of the tumbling event-time window holding ts_ms (aligned to the epoch, as Flink's windows are)."""
    return ts_ms - ts_ms % window_ms


def windowed_features(frames: list[DetectionFrame], window_ms: int) -> list[tuple[int, int, np.ndarray]]:
    """Offline equivalent of the job's windowing: (start, end, vector) per non-empty window, in time order, with
    track first-seen times carried across windows. As in the job, the first COLD_WINDOWS windows (tracks already in
    view have unknown dwell times) are left out."""
    by_window: dict[int, list[DetectionFrame]] = {}
    for frame in frames:
        by_window.setdefault(window_start(frame.ts_ms, window_ms), []).append(frame)
    first_seen: dict[int, int] = {}
    result = []
    for index, start in enumerate(sorted(by_window)):
        window = by_window[start]
        if index >= COLD_WINDOWS:
            result.append((start, start + window_ms, scene_features(window, first_seen)))
        for frame in sorted(window, key=lambda f: f.ts_ms):
            for track in frame.detections.tracker_id:
                first_seen.setdefault(int(track), frame.ts_ms)
    return result
