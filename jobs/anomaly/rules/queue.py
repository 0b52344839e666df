"""A queue: at least `min_vehicles` vehicles in one traffic zone (a lane), each slower than `max_speed_px_s` (stopped
counts) for `seconds`: congestion seen from the tracks, once per episode of the lane.

The traffic job measures a lane's traffic state per minute from speeds and occupancy; this rule is the per-frame
counterpart an operator is alerted by. A car in a queue is explained by it (one incident: the queue, with the cars'
tracks): the slow-vehicle and stopped-vehicle events of the queue's vehicles are dropped, for as long as the tracks
live, and while a queue forms (at least `min_vehicles` slow over their last two seconds, tracked a second or more,
not yet for `seconds`; a detection missed here and there does not break it) the events of the lane's slow vehicles
wait; a single slow or stopped car, and one whose queue never forms, is reported as
before. Only vehicles that drove where they are count (`TrackHistory.arrived`): a box the detector draws on something
static is no car in a queue. A car that has just entered the view crawling may not have shown that yet (its box
grows from the edge: its centre moves at half its speed), so while a queue forms a track younger than `seconds`
counts too; a box that stays put longer stops holding the lane's slow vehicles back.

An episode ends, and the rule re-arms for the lane, once it held fewer than `min_vehicles` slow vehicles for
`clear_seconds`. Speeds are image speeds of the track's anchor (px/s), so the threshold is set per zone, like
slow_vehicle's (the sample car park's traffic moves at about 120 px/s at the box centre; slowed four times, 28 px/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from jobs.anomaly.rules.base import NEIGHBOUR_SEEN_MS, VEHICLES, Rule, RuleParams

FORMING_S = 1.0  # a vehicle tracked this long, slow over its last FORMING_WINDOW_S, counts towards a forming queue
FORMING_WINDOW_S = 2.0
FORMING_FILLED = 0.5  # ... its points spanning at least this much of the window (detections missed here and there)
FILLED = 0.8  # the points of the last `seconds` must span this much of it


@dataclass
class LaneQueue:
    """What the rule remembers of one zone (RuleState.notes["queue"][zone name])."""

    forming: bool = False  # this frame: at least min_vehicles slow vehicles, over FORMING_S or more each
    active_since_ms: int | None = None  # the episode that fired and has not ended
    last_forming_ms: int | None = None  # the latest frame with at least min_vehicles slow vehicles
    claimed: set = field(default_factory=set)  # tracks of the lane's queues: their slow / stopped events are its


class Queue(Rule):
    kind = "queue"
    zone_kinds = ("traffic",)
    per_zone = True
    explains = frozenset({"slow_vehicle", "stopped_vehicle"})

    class Params(RuleParams):
        min_vehicles: int = Field(2, ge=2, description="At least this many slow vehicles in the lane (2 fit the "
                                  "overhead car park's view of a lane).")
        max_speed_px_s: float = Field(35.0, gt=0, description="Each slower than this (px/s; stopped counts).")
        seconds: float = Field(4.0, gt=0, description="Each slow for at least this long (s).")
        clear_seconds: float = Field(10.0, gt=0, description="The episode ends once the lane held fewer slow "
                                     "vehicles for this long (s); then the rule re-arms.")

    def slow_tracks(self, scene, zone_index: int, params, forming: bool = False) -> list[int]:
        """Vehicles in the zone (seen there in the last second: a detection the detector missed in this frame still
        counts) that drove there and moved slower than max_speed_px_s over their last `seconds` (their track followed
        that long, its points filling nearly all of it). `forming`: slow over their last FORMING_WINDOW_S, followed
        for FORMING_S, and tracks younger than `seconds` need not have shown yet that they drove there."""
        seconds = min(params.seconds, FORMING_WINDOW_S) if forming else params.seconds
        min_age_s = min(params.seconds, FORMING_S) if forming else params.seconds
        filled = FORMING_FILLED if forming else FILLED
        now, found = scene.ts_ms, []
        recent = [(track_id, track) for track_id, track in scene.tracks.items()
                  if now - track.points[-1][0] <= NEIGHBOUR_SEEN_MS]
        if not recent:
            return []
        inside = scene.zones[zone_index].contains(np.array([track.position for _, track in recent], dtype=np.float32))
        for (track_id, track), in_zone in zip(recent, inside):
            if not in_zone:
                continue
            age_ms = now - track.first_seen_ms
            arriving = forming and age_ms < params.seconds * 1000
            if track.class_id not in VEHICLES or not (track.arrived or arriving) or age_ms < min_age_s * 1000:
                continue
            measured = track.speed_px_s(track.points[-1][0], seconds)  # up to when it was last seen
            if measured is not None and measured[1] >= filled * seconds and measured[0] < params.max_speed_px_s:
                found.append(int(track_id))
        return sorted(found)

    def check_zones(self, scene, zone_params):
        lanes, now, events = scene.state.notes.setdefault(self.kind, {}), scene.ts_ms, []
        for zone_index, (zone, params) in enumerate(zip(scene.zones, zone_params)):
            if zone.kind != "traffic" or not params.enabled:
                lanes.pop(zone.name, None)
                continue
            lane = lanes.setdefault(zone.name, LaneQueue())
            lane.claimed &= set(scene.tracks)  # forgotten tracks need no claim
            slow_now = self.slow_tracks(scene, zone_index, params, forming=True)
            lane.forming = len(slow_now) >= params.min_vehicles
            if lane.forming:
                lane.last_forming_ms = now
            if lane.active_since_ms is not None:
                if lane.forming:
                    lane.claimed |= set(slow_now)  # vehicles joining the queue
                elif now - lane.last_forming_ms >= params.clear_seconds * 1000:
                    lane.active_since_ms = None  # the queue has gone: re-armed
                continue
            queued = self.slow_tracks(scene, zone_index, params) if lane.forming else []
            if len(queued) >= params.min_vehicles:
                lane.active_since_ms = now
                lane.claimed |= set(queued)
                events.append(self.event(scene, now - params.seconds * 1000, now, len(queued), params.min_vehicles,
                                         queued, zone, key=f"{zone.name}:{now}"))
        return events

    def explained(self, scene, event):
        lane = scene.state.notes.get(self.kind, {}).get(event["zone"])
        if lane is None:
            return False
        tracks = set(event["track_ids"])
        return bool(tracks & lane.claimed) or lane.active_since_ms is not None or lane.forming
