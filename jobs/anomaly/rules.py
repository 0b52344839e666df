"""Known anomalies from tracks and the camera's zones: stopped vehicle, wrong-way movement, loitering, crowding,
object left behind.

A `RuleEngine` holds one camera's track histories and is fed frames in event-time order; each rule fires at most once
per track (crowding at most once per cool-down bucket), with a deterministic event id so replays de-duplicate.
Pure Python over arrays: the Flink job keeps an engine per camera in keyed state.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vigil.features import FrameObs

PERSON, CAR = 0, 2


@dataclass
class RuleConfig:
    stopped_seconds: float = 6.0  # a car that moved less than stopped_px over this long is stopped
    stopped_px: float = 12.0
    wrong_way_min_speed: float = 20.0  # px/s: slower movement has no meaningful direction
    wrong_way_cosine: float = -0.5  # motion against the zone direction by more than 120 degrees
    wrong_way_seconds: float = 1.0  # sustained this long
    loiter_seconds: float = 30.0
    crowd_persons: int = 4
    crowd_cooldown_seconds: float = 30.0
    crowd_min_seen_seconds: float = 1.0  # only people tracked this long count (flickering false boxes do not)
    left_seconds: float = 10.0  # an object that split off another track and stayed put this long, owner gone
    left_px: float = 10.0
    left_owner_radius: float = 120.0
    history_seconds: float = 20.0


@dataclass
class Zone:
    name: str
    kind: str
    polygon: np.ndarray
    direction: np.ndarray | None

    def contains(self, x: float, y: float) -> bool:
        inside = False
        pts = self.polygon
        for i in range(len(pts)):
            (x1, y1), (x2, y2) = pts[i], pts[(i + 1) % len(pts)]
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
        return inside


def zones_from_config(zones: list) -> list[Zone]:
    """From `vigil.cameras.Zone` models (or dicts of the same shape)."""
    result = []
    for zone in zones:
        zone = zone if isinstance(zone, dict) else zone.model_dump()
        direction = zone.get("direction")
        if direction is not None:
            direction = np.asarray(direction, dtype=float)
            direction = direction / max(np.linalg.norm(direction), 1e-9)
        result.append(Zone(zone["name"], zone.get("kind", "traffic"), np.asarray(zone["polygon"], dtype=float), direction))
    return result


@dataclass
class TrackHistory:
    class_id: int
    first_seen_ms: int
    points: deque = field(default_factory=deque)  # (ts_ms, x, y)
    fired: set = field(default_factory=set)
    wrong_since_ms: int | None = None
    born_near: int | None = None  # the track it appeared next to, if any (a dropped object)
    owner_moved_on: bool = False  # that track was still seen a second later: they coexisted, not a re-identified track


class RuleEngine:
    def __init__(self, camera_id: str, zones: list[Zone], config: RuleConfig | None = None):
        self.camera_id, self.zones, self.config = camera_id, zones, config or RuleConfig()
        self.tracks: dict[int, TrackHistory] = {}
        self.crowd_buckets: set[int] = set()

    def _zone_at(self, x: float, y: float, kinds: tuple[str, ...]) -> Zone | None:
        if not self.zones:
            return Zone("image", "traffic", np.zeros((0, 2)), None) if "traffic" in kinds else None
        return next((z for z in self.zones if z.kind in kinds and z.contains(x, y)), None)

    def observe(self, frame: FrameObs) -> list[dict]:
        cfg, events, now = self.config, [], frame.ts_ms
        for (x, y), class_id, track_id in zip(frame.centres, frame.class_id, frame.track_id):
            if track_id < 0:
                continue
            if int(track_id) not in self.tracks:
                self.tracks[int(track_id)] = TrackHistory(int(class_id), now, born_near=self._nearest(x, y, now))
            track = self.tracks[int(track_id)]
            track.points.append((now, float(x), float(y)))
            while track.points and now - track.points[0][0] > cfg.history_seconds * 1000:
                track.points.popleft()
            events += self._track_rules(int(track_id), track, now)
        seen_now = {int(t) for t in frame.track_id if t >= 0}
        for track in self.tracks.values():
            if track.born_near in seen_now and now - track.first_seen_ms >= 1000:
                track.owner_moved_on = True
        people = sorted(int(t) for c, t in zip(frame.class_id, frame.track_id)
                        if c == PERSON and t >= 0 and int(t) in self.tracks
                        and now - self.tracks[int(t)].first_seen_ms >= cfg.crowd_min_seen_seconds * 1000)
        bucket = int(now // (cfg.crowd_cooldown_seconds * 1000))
        if len(people) >= cfg.crowd_persons and bucket not in self.crowd_buckets:
            self.crowd_buckets.add(bucket)
            events.append(self._event("crowding", now, now, len(people), cfg.crowd_persons, people, None,
                                      f"{self.camera_id}:crowding:{bucket}"))
        # forget tracks not seen for a while
        for track_id in [t for t, h in self.tracks.items() if now - h.points[-1][0] > cfg.history_seconds * 1000]:
            del self.tracks[track_id]
        return events

    def _nearest(self, x: float, y: float, now: int, exclude: int | None = None) -> int | None:
        """A track seen in the last second within left_owner_radius of (x, y), if any."""
        for other_id, other in self.tracks.items():
            if other_id == exclude or now - other.points[-1][0] > 1000:
                continue
            _, ox, oy = other.points[-1]
            if math.hypot(ox - x, oy - y) <= self.config.left_owner_radius:
                return other_id
        return None

    def _track_rules(self, track_id: int, track: TrackHistory, now: int) -> list[dict]:
        cfg, events = self.config, []
        _, x, y = track.points[-1]
        if track.class_id == CAR and "stopped_vehicle" not in track.fired:
            zone = self._zone_at(x, y, ("traffic",))
            window = [p for p in track.points if now - p[0] <= cfg.stopped_seconds * 1000]
            observed = (now - track.first_seen_ms) / 1000
            if zone and observed >= cfg.stopped_seconds and window and now - window[0][0] >= 0.8 * cfg.stopped_seconds * 1000:
                spread = max(math.hypot(px - x, py - y) for _, px, py in window)
                if spread < cfg.stopped_px:
                    track.fired.add("stopped_vehicle")
                    events.append(self._event("stopped_vehicle", window[0][0], now, observed, cfg.stopped_seconds,
                                              [track_id], zone.name, f"{self.camera_id}:stopped_vehicle:{track_id}"))
        if "wrong_way" not in track.fired:
            zone = self._zone_at(x, y, ("traffic",))
            recent = [p for p in track.points if now - p[0] <= 1500]
            if zone is not None and zone.direction is not None and len(recent) >= 2 and recent[-1][0] > recent[0][0]:
                motion = np.array([recent[-1][1] - recent[0][1], recent[-1][2] - recent[0][2]])
                speed = np.linalg.norm(motion) / ((recent[-1][0] - recent[0][0]) / 1000)
                cosine = float(motion @ zone.direction / max(np.linalg.norm(motion), 1e-9))
                if speed >= cfg.wrong_way_min_speed and cosine <= cfg.wrong_way_cosine:
                    track.wrong_since_ms = track.wrong_since_ms if track.wrong_since_ms is not None else recent[0][0]
                    if now - track.wrong_since_ms >= cfg.wrong_way_seconds * 1000:
                        track.fired.add("wrong_way")
                        events.append(self._event("wrong_way", track.wrong_since_ms, now, -cosine, -cfg.wrong_way_cosine,
                                                  [track_id], zone.name, f"{self.camera_id}:wrong_way:{track_id}"))
                else:
                    track.wrong_since_ms = None
        if track.class_id == PERSON and "loitering" not in track.fired:
            zone = self._zone_at(x, y, ("pedestrian", "restricted"))
            dwell = (now - track.first_seen_ms) / 1000
            if zone is not None and dwell >= cfg.loiter_seconds:
                track.fired.add("loitering")
                events.append(self._event("loitering", track.first_seen_ms, now, dwell, cfg.loiter_seconds, [track_id],
                                          zone.name, f"{self.camera_id}:loitering:{track_id}"))
        if track.owner_moved_on and "object_left" not in track.fired and track.class_id != CAR:
            window = [p for p in track.points if now - p[0] <= cfg.left_seconds * 1000]
            if (now - track.first_seen_ms) / 1000 >= cfg.left_seconds and window and now - window[0][0] >= 0.8 * cfg.left_seconds * 1000:
                spread = max(math.hypot(px - x, py - y) for _, px, py in window)
                if spread < cfg.left_px and self._nearest(x, y, now, exclude=track_id) is None:
                    track.fired.add("object_left")
                    zone = self._zone_at(x, y, ("pedestrian", "restricted", "traffic"))
                    events.append(self._event("object_left", track.first_seen_ms, now, (now - track.first_seen_ms) / 1000,
                                              cfg.left_seconds, [track_id, track.born_near], zone.name if zone else None,
                                              f"{self.camera_id}:object_left:{track_id}"))
        return events

    def _event(self, kind, start_ms, end_ms, score, threshold, track_ids, zone, event_id) -> dict:
        return dict(event_id=event_id, camera_id=self.camera_id, kind=kind, window_start_ms=int(start_ms),
                    window_end_ms=int(end_ms), score=float(score), threshold=float(threshold), track_ids=list(track_ids),
                    zone=zone, top_cells=[], model_version=None, emitted_ts_ms=0)
