"""The rule interface and the engine that runs the rules over one camera's frames.

A `RuleEngine` holds one camera's track histories and is fed frames in event-time order. Per frame it computes every
zone's membership of every anchor point at once, then for each tracked detection asks each per-track rule in turn,
then runs the per-frame hooks. A rule fires at most once per track (camera-wide rules keep their own cool-down), with
a deterministic event id so replays de-duplicate.

Picture rules (`picture = True`: the bad-video rules, camera-wide, on the frame's `VideoQuality`) run first on each
frame. While one of them holds the camera's detection suspended (`RuleState.suspended`: an episode of camera moved or
frozen), the engine asks no per-track rule about the frame (track histories still grow), as NTCIP's
detectionAutoSuspended: the zones no longer lie where the lanes are, or the picture shows no traffic. The job passes
that flag on to the incident stage (`Presence.suspended`), which marks the camera's incidents `detection_suspended`
while it lasts. `RuleState.guarded` holds the per-track rules back too, without the flag: camera moved's first moved
frames, before its episode fires.

Zone rules (`per_zone = True`: queue, debris) judge each zone as a whole once a frame, after the per-track rules, with
each zone's settings; they are lane rules too, suspended with the per-track rules. A rule may explain other rules'
events (`explains`): a queue explains the slow and stopped vehicles in it, debris the "stopped vehicle" the detector
boxes on a static object; the engine then drops those events, and the track may fire them later if they no longer are
explained (one incident per real-world event: the queue, not the queue and each car in it).

A rule's settings are resolved per zone: the rule's defaults ← the camera's `rules:` ← the zone's `rules:`. Unknown
rules or bad values fail when the engine is built (the job builds one per camera at start-up).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vigil.detections import DetectionFrame, Detections, Position, VideoQuality
from vigil.zones import RuleSettings, Zone

PERSON, CAR = 0, 2
VEHICLES = frozenset({2, 3, 5, 7})  # COCO car, motorcycle, bus, truck: what stops, queues or drives the wrong way
ANCHOR = Position.CENTER  # where a track "is", for zones and motion
HISTORY_SECONDS = 20.0  # track points kept, and how long an unseen track is remembered
NEIGHBOUR_SEEN_MS = 1000  # a track counts as present near a point if seen this recently
# A vehicle track whose anchor has been this far from where it was first seen drove there: a vehicle that stopped or
# crawls, not a box the detector keeps drawing on something static (the car camera's detector calls a fallen table
# top a car). A stopped car's box centre jitters by 1-2 px on the car camera (stopped_vehicle allows 12 px).
ARRIVED_PX = 20.0
# With no zones configured, the whole image is one traffic zone (its polygon is never tested: it holds every point).
WHOLE_IMAGE = Zone(name="image", kind="traffic", polygon=[(-1e9, -1e9), (1e9, -1e9), (1e9, 1e9), (-1e9, 1e9)])


class RuleSettingsError(ValueError):
    """A camera's or zone's `rules:` names an unknown rule or setting, or holds a bad value."""


class RuleParams(BaseModel):
    """A rule's settings. Each rule subclasses this as `Params`, with its thresholds and their defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    enabled: bool = True


@dataclass
class TrackHistory:
    class_id: int
    first_seen_ms: int
    points: deque = field(default_factory=deque)  # (ts_ms, x, y) of the anchor, the last history_seconds
    fired: set = field(default_factory=set)  # kinds of the rules that fired on this track
    notes: dict = field(default_factory=dict)  # rule kind -> what that rule remembers of this track
    origin: tuple | None = None  # (x, y) of its anchor when first seen (None in checkpoints written before it existed)
    travelled_px: float = 0.0  # the farthest its anchor has been from `origin`

    @property
    def position(self) -> tuple[float, float]:
        _, x, y = self.points[-1]
        return x, y

    @property
    def arrived(self) -> bool:
        """It moved into where it is (ARRIVED_PX): a vehicle that drove there, not something the detector boxes
        where it appeared."""
        return self.travelled_px >= ARRIVED_PX

    def add(self, ts_ms: int, x: float, y: float, history_ms: float) -> None:
        """Its anchor in a new frame; points older than `history_ms` are dropped."""
        if self.origin is None:
            self.origin = (self.points[0][1], self.points[0][2]) if self.points else (x, y)
        self.points.append((ts_ms, x, y))
        self.travelled_px = max(self.travelled_px, math.hypot(x - self.origin[0], y - self.origin[1]))
        while ts_ms - self.points[0][0] > history_ms:
            self.points.popleft()

    def speed_px_s(self, now_ms: int, seconds: float) -> tuple[float, float] | None:
        """(net speed of its anchor over the last `seconds`, px/s; how long those points span, s), or None where it
        has fewer than two points in that time."""
        window = [p for p in self.points if now_ms - p[0] <= seconds * 1000]
        if len(window) < 2 or window[-1][0] <= window[0][0]:
            return None
        span_s = (window[-1][0] - window[0][0]) / 1000
        return math.hypot(window[-1][1] - window[0][1], window[-1][2] - window[0][2]) / span_s, span_s

    def stayed_put(self, now_ms: int, seconds: float, max_movement_px: float) -> int | None:
        """Start (ms) of the last `seconds` if the track was followed for at least that long, its points fill (nearly)
        all of it, and it stayed within `max_movement_px` of where it is now; else None."""
        window = [p for p in self.points if now_ms - p[0] <= seconds * 1000]
        # the window must be (nearly) filled: a track seen only briefly has not shown it stands still
        if (now_ms - self.first_seen_ms) / 1000 < seconds or not window or now_ms - window[0][0] < 0.8 * seconds * 1000:
            return None
        x, y = self.position
        if max(math.hypot(px - x, py - y) for _, px, py in window) >= max_movement_px:
            return None
        return window[0][0]


@dataclass
class RuleState:
    """What an engine remembers of its camera between frames (the Flink job keeps it in keyed state)."""

    tracks: dict[int, TrackHistory] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # rule kind -> that rule's camera-wide memory
    # picture rule kind -> start (capture ms) of its episode that suspends the per-track rules: the signal
    suspended: dict = field(default_factory=dict)
    # picture rule kind -> its latest bad frame: per-track rules held back while an episode may be starting
    guarded: dict = field(default_factory=dict)

    @property
    def suspended_since_ms(self) -> int | None:
        """Since when the camera's per-track (lane) rules are suspended by a bad-video episode (camera moved,
        frozen), or None: what the job tells the incident stage (`Presence.suspended`)."""
        return min(self.suspended.values()) if self.suspended else None

    @property
    def per_track_rules_held(self) -> bool:
        """No per-track rule is asked about this frame: suspended, or held back by a guard."""
        return bool(self.suspended or self.guarded)

    def __setstate__(self, state: dict) -> None:  # checkpoints written before these existed restore without them
        self.__dict__.update({"suspended": {}, "guarded": {}, **state})


@dataclass
class Scene:
    """One frame as the rules see it: detections, their anchors, zone membership and the camera's tracks."""

    camera_id: str
    ts_ms: int
    detections: Detections
    anchors: np.ndarray  # (n, 2) float32
    zones: list[Zone]
    inside: np.ndarray  # (zones, n) bool: zone membership of each anchor
    state: RuleState
    quality: VideoQuality | None = None  # the frame's picture-quality figures (None: not measured)

    def __post_init__(self):
        self._holding = self.inside.T.tolist()  # per detection, per zone: inside? (lists: cheap to scan one by one)

    @property
    def tracks(self) -> dict[int, TrackHistory]:
        return self.state.tracks

    def zone_index_at(self, index: int, kinds: tuple[str, ...]) -> int | None:
        """Position in `zones` of the first zone of one of these kinds holding detection `index`'s anchor."""
        return next((i for i, (zone, inside) in enumerate(zip(self.zones, self._holding[index]))
                     if inside and zone.kind in kinds), None)

    def zone_at(self, index: int, kinds: tuple[str, ...]) -> Zone | None:
        """The first zone of one of these kinds holding detection `index`'s anchor."""
        zone_index = self.zone_index_at(index, kinds)
        return None if zone_index is None else self.zones[zone_index]

    def nearest_track(self, x: float, y: float, radius: float, exclude: int | None = None) -> int | None:
        """A track seen in the last second within `radius` px of (x, y), if any (the first such in track order)."""
        for track_id, track in self.tracks.items():
            if track_id == exclude or self.ts_ms - track.points[-1][0] > NEIGHBOUR_SEEN_MS:
                continue
            other_x, other_y = track.position
            if math.hypot(other_x - x, other_y - y) <= radius:
                return track_id
        return None


class Rule:
    """One known anomaly. Subclasses set `kind`, their `Params`, and implement the hooks they need.

    Per-track rules look at a track where it is now: the engine finds the first zone of one of `zone_kinds` holding
    the track's anchor (None if none) and passes that zone's settings. Camera-wide rules (`camera_wide = True`) take
    their settings from the camera's `rules:` only. Picture rules (`picture = True`, camera-wide) judge the frame's
    picture quality; their `check_frame` runs before the per-track rules, which it may suspend."""

    kind: ClassVar[str]
    Params: ClassVar[type[RuleParams]] = RuleParams
    zone_kinds: ClassVar[tuple[str, ...]] = ("traffic", "pedestrian", "restricted")
    camera_wide: ClassVar[bool] = False
    picture: ClassVar[bool] = False
    per_zone: ClassVar[bool] = False  # a zone rule: `check_zones` once a frame, with every zone's settings
    explains: ClassVar[frozenset[str]] = frozenset()  # kinds of other rules' events it may explain (`explained`)

    def track_started(self, scene: Scene, track: TrackHistory, zone: Zone | None, params: RuleParams) -> None:
        """A new track appeared (its first point is in `track.points`; it is not in `scene.tracks` yet)."""

    def check_track(self, scene: Scene, track_id: int, track: TrackHistory, zone: Zone | None,
                    params: RuleParams) -> dict | None:
        """After the track's point of this frame was added: an AnomalyEvent, or None. Not called once it fired, nor
        where the rule is disabled."""
        return None

    def check_frame(self, scene: Scene, params: RuleParams) -> list[dict]:
        """After every track of the frame was checked (always called; events are dropped where disabled)."""
        return []

    def check_zones(self, scene: Scene, zone_params: list[RuleParams]) -> list[dict]:
        """Zone rules: after every track of the frame was checked, once a frame; `zone_params[i]` are the settings of
        `scene.zones[i]` (the rule checks `enabled` itself). Not called while the lane rules are suspended."""
        return []

    def still_present(self, camera_id: str, state: RuleState, now_ms: int) -> list[str]:
        """Event ids of this rule's trackless findings whose evidence this camera still shows at `now_ms` (debris:
        the object is still there). The incident stage keeps their incidents open while they are listed, as it does
        a track incident while its tracks are seen."""
        return []

    def explained(self, scene: Scene, event: dict) -> bool:
        """Whether this rule's findings explain another rule's event of this frame (a kind in `explains`): the
        engine then drops it. Called after `check_zones`."""
        return False

    def event(self, scene: Scene, start_ms: int, end_ms: int, score: float, threshold: float, track_ids: list,
              zone: Zone | None, key) -> dict:
        """An AnomalyEvent of this rule; `key` makes the event id unique per camera and rule (a track id, a bucket)."""
        return dict(event_id=self.event_id(scene.camera_id, key), camera_id=scene.camera_id, kind=self.kind,
                    window_start_ms=int(start_ms), window_end_ms=int(end_ms), score=float(score),
                    threshold=float(threshold), track_ids=list(track_ids),
                    zone=zone.name if zone is not None else None, top_cells=[], model_version=None, emitted_ts_ms=0)

    def event_id(self, camera_id: str, key) -> str:
        return f"{camera_id}:{self.kind}:{key}"

    def params(self, where: str, *layers: dict) -> RuleParams:
        """The rule's settings with `layers` of overrides applied in order, or a RuleSettingsError saying where."""
        merged = {}
        for layer in layers:
            merged.update(layer.get(self.kind, {}))
        try:
            return self.Params.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: "
                f"{'unknown setting' if e['type'] == 'extra_forbidden' else e['msg']} (got {e['input']!r})"
                for e in exc.errors())
            valid = ", ".join(f"{name} (default {f.default!r})" for name, f in self.Params.model_fields.items())
            raise RuleSettingsError(f"{where}, rule {self.kind!r}: {problems}. Valid settings: {valid}") from None


def resolve_settings(rules: Sequence[Rule], camera_id: str, zones: Sequence[Zone],
                     camera_rules: RuleSettings) -> dict[str, tuple[RuleParams, list[RuleParams]]]:
    """Each rule's settings for the camera as a whole and for each zone: rule kind -> (camera's, [zone's, ...])."""
    known = {rule.kind: rule for rule in rules}
    valid = ", ".join(sorted(known))
    camera_where = f"camera {camera_id!r}"
    layers = [(camera_where, camera_rules)] + [(f"{camera_where}, zone {z.name!r}", z.rules) for z in zones]
    for where, settings in layers:
        for kind in settings:
            if kind not in known:
                raise RuleSettingsError(f"{where}: unknown rule {kind!r}; valid rules: {valid}")
            if where != camera_where and known[kind].camera_wide:
                raise RuleSettingsError(f"{where}: rule {kind!r} looks at the whole camera; set it under the "
                                        "camera's rules:, not a zone's")
    return {rule.kind: (rule.params(camera_where, camera_rules),
                        [rule.params(f"{camera_where}, zone {z.name!r}", camera_rules, z.rules) for z in zones])
            for rule in rules}


class RuleEngine:
    """The rules over one camera's frames. `state` holds the camera's memory; the Flink job swaps in the keyed state
    before `observe` and stores it after."""

    def __init__(self, camera_id: str, zones: Sequence[Zone] = (), camera_rules: RuleSettings | None = None,
                 history_seconds: float = HISTORY_SECONDS, rules: Sequence[Rule] | None = None):
        if rules is None:
            # the registered rules; imported here because that package imports this module
            from jobs.anomaly.rules import RULES

            rules = RULES
        self.camera_id, self.rules, self.history_ms = camera_id, list(rules), history_seconds * 1000
        self.zones = list(zones)
        self.areas = self.zones or [WHOLE_IMAGE]  # what rules look up (a track is somewhere in the image)
        self.settings = resolve_settings(self.rules, camera_id, self.areas, camera_rules or {})
        self.state = RuleState()

    def _zone_params(self, rule: Rule, scene: Scene, index: int) -> tuple[Zone | None, RuleParams]:
        camera_params, zone_params = self.settings[rule.kind]
        zone_index = scene.zone_index_at(index, rule.zone_kinds)
        if zone_index is None:
            return None, camera_params
        return scene.zones[zone_index], zone_params[zone_index]

    def observe(self, frame: DetectionFrame) -> list[dict]:
        detections, now = frame.detections, frame.ts_ms
        anchors = detections.get_anchors_coordinates(ANCHOR)
        if self.zones:
            inside = np.stack([zone.contains(anchors) for zone in self.zones])
        else:
            inside = np.ones((1, len(anchors)), dtype=bool)
        scene = Scene(self.camera_id, now, detections, anchors, self.areas, inside, self.state, frame.quality)
        tracks, events = self.state.tracks, self._frame_rules(scene, picture=True)
        suspended = self.state.per_track_rules_held  # camera moved / frozen: no per-track rule is asked now
        for index, (track_id, class_id) in enumerate(zip(detections.tracker_id, detections.class_id)):
            if track_id < 0:
                continue
            track_id, point = int(track_id), (now, float(anchors[index, 0]), float(anchors[index, 1]))
            track = tracks.get(track_id)
            if track is None:
                track = TrackHistory(int(class_id), now, deque([point]), origin=point[1:])
                for rule in self.rules:
                    rule.track_started(scene, track, *self._zone_params(rule, scene, index))
                tracks[track_id] = track
            else:
                track.add(*point, self.history_ms)
            if suspended:
                continue
            for rule in self.rules:
                if rule.kind in track.fired:
                    continue
                zone, params = self._zone_params(rule, scene, index)
                event = rule.check_track(scene, track_id, track, zone, params) if params.enabled else None
                if event is not None:
                    track.fired.add(rule.kind)
                    events.append(event)
        events += self._frame_rules(scene, picture=False)
        if not self.state.per_track_rules_held:
            events = self._zone_rules(scene, events)
        # forget tracks not seen for a while
        for track_id in [t for t, h in tracks.items() if now - h.points[-1][0] > self.history_ms]:
            del tracks[track_id]
        return events

    def still_present(self, now_ms: int) -> set[str]:
        """Event ids of trackless findings still in view at `now_ms`, the latest frame's time (`Rule.still_present`)."""
        return {event_id for rule in self.rules for event_id in rule.still_present(self.camera_id, self.state, now_ms)}

    def _zone_rules(self, scene: Scene, events: list[dict]) -> list[dict]:
        """The zone rules' events added to the frame's, less the events they explain (whose tracks may fire again)."""
        zone_rules = [rule for rule in self.rules if rule.per_zone]
        for rule in zone_rules:
            events = events + rule.check_zones(scene, self.settings[rule.kind][1])
        for rule in zone_rules:
            if not rule.explains:
                continue
            kept = []
            for event in events:
                if event["kind"] in rule.explains and rule.explained(scene, event):
                    for track_id in event["track_ids"]:
                        if track_id in scene.tracks:
                            scene.tracks[track_id].fired.discard(event["kind"])
                else:
                    kept.append(event)
            events = kept
        return events

    def _frame_rules(self, scene: Scene, picture: bool) -> list[dict]:
        """The per-frame hooks of the picture rules (before the tracks) or of the others (after them)."""
        events = []
        for rule in self.rules:
            if rule.picture != picture:
                continue
            camera_params, _ = self.settings[rule.kind]
            frame_events = rule.check_frame(scene, camera_params)
            events += frame_events if camera_params.enabled else []
        return events
