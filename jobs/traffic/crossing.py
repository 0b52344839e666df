"""Counting vehicles on one count line from their tracks' anchor trajectories.

Boxes flicker, and a vehicle waiting on the line wobbles back and forth across it, so a crossing is not "the anchor
changed sides between two frames". A track's side is only *known* once its signed distance from the line exceeds
`hysteresis_px`; a crossing is a change of known side, placed at the last time the trajectory went through the line
(interpolated between the two frames around it), and counted only when that point lies on the segment (not beside
its ends, where the neighbouring lane's traffic passes). Each track is counted at most once per line, in the
direction of its first crossing: stop-and-go traffic rolling back and forth over the line is one vehicle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vigil.geometry import CountLine

HYSTERESIS_PX = 6.0  # a side is known beyond this distance from the line; jitter inside the band never counts
END_MARGIN_PX = 4.0  # how far beyond the segment's ends a crossing still counts (the ends are drawn by hand)


@dataclass(frozen=True)
class Crossing:
    """A track crossed the line: direction +1 towards the line's positive side, -1 against it."""

    line: str
    track_id: int
    class_id: int  # the class the track was seen as most often
    direction: int
    ts_ms: float  # interpolated between the frames on either side of the line
    x: float  # where the anchor crossed, pixels
    y: float


@dataclass
class _TrackOnLine:
    """What the counter remembers of one track."""

    side: int  # last known side: +1, -1, 0 (not known yet)
    ts_ms: int  # the track's last point
    x: float
    y: float
    distance: float  # signed, pixels
    last_zero: tuple[float, float, float] | None = None  # (ts_ms, x, y) of the latest pass through the line
    counted: bool = False
    classes: Counter = field(default_factory=Counter)


class LineCounter:
    """The crossings of one count line. Feed it every frame's tracked anchors in time order."""

    def __init__(self, line: CountLine, hysteresis_px: float = HYSTERESIS_PX, end_margin_px: float = END_MARGIN_PX):
        self.line, self.hysteresis_px, self.end_margin_px = line, hysteresis_px, end_margin_px
        self.tracks: dict[int, _TrackOnLine] = {}

    def observe(self, ts_ms: int, track_ids: np.ndarray, class_ids: np.ndarray,
                anchors: np.ndarray) -> list[Crossing]:
        """One frame: (n,) track ids (< 0: not confirmed, ignored), (n,) COCO classes, (n, 2) anchors → crossings."""
        track_ids = np.asarray(track_ids).reshape(-1)
        distances = self.line.signed_distance(anchors)  # the whole frame at once
        anchors = np.asarray(anchors, dtype=float).reshape(-1, 2)
        crossings = []
        for track_id, class_id, (x, y), distance in zip(track_ids.tolist(), np.asarray(class_ids).tolist(),
                                                       anchors.tolist(), distances.tolist()):
            if track_id < 0:
                continue
            crossing = self._step(int(ts_ms), track_id, int(class_id), x, y, distance)
            if crossing is not None:
                crossings.append(crossing)
        return crossings

    def _known_side(self, distance: float) -> int:
        return 0 if abs(distance) <= self.hysteresis_px else (1 if distance > 0 else -1)

    def _step(self, ts_ms: int, track_id: int, class_id: int, x: float, y: float, distance: float) -> Crossing | None:
        track = self.tracks.get(track_id)
        if track is None:
            track = self.tracks[track_id] = _TrackOnLine(self._known_side(distance), ts_ms, x, y, distance)
            track.classes[class_id] += 1
            return None
        if ts_ms <= track.ts_ms:  # a replayed or late frame: the trajectory only goes forward
            return None
        track.classes[class_id] += 1
        if track.distance != 0 and (distance == 0 or (track.distance > 0) != (distance > 0)):  # through or onto it
            share = track.distance / (track.distance - distance)
            track.last_zero = (track.ts_ms + share * (ts_ms - track.ts_ms),
                               track.x + share * (x - track.x), track.y + share * (y - track.y))
        crossing = None
        side = self._known_side(distance)
        if side:
            if track.side and side != track.side and track.last_zero is not None and not track.counted:
                zero_ts, zero_x, zero_y = track.last_zero
                along = float(self.line.position_along(np.array([zero_x, zero_y]))[0])
                if -self.end_margin_px <= along <= self.line.length_px + self.end_margin_px:
                    track.counted = True
                    crossing = Crossing(self.line.name, track_id, track.classes.most_common(1)[0][0], side,
                                        zero_ts, zero_x, zero_y)
            track.side, track.last_zero = side, None  # a later crossing needs a new pass through the line
        track.ts_ms, track.x, track.y, track.distance = ts_ms, x, y, distance
        return crossing

    def forget(self, unseen_since_ms: int) -> None:
        """Drop tracks whose last point is older than `unseen_since_ms`."""
        for track_id in [t for t, track in self.tracks.items() if track.ts_ms < unseen_since_ms]:
            del self.tracks[track_id]
