"""An object that appeared next to another track (its owner), stayed put while the owner moved on, and is now alone:
a bag left behind. Not a car, and not a track the tracker merely restarted in place (the owner must have been seen
alongside it, a second after it appeared)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from jobs.anomaly.rules.base import CAR, Rule, RuleParams

COEXIST_MS = 1000  # the owner still seen this long after the object appeared: two objects, not one re-identified


@dataclass
class Origin:
    owner: int  # the track the object appeared next to
    owner_moved_on: bool = False


class ObjectLeft(Rule):
    kind = "object_left"

    class Params(RuleParams):
        seconds: float = Field(10.0, gt=0, description="Stayed put at least this long (s).")
        max_movement_px: float = Field(10.0, gt=0, description="Moved less than this far over those seconds.")
        owner_radius_px: float = Field(120.0, gt=0, description="Tracks this close are its owner or keep it company.")

    def track_started(self, scene, track, zone, params):
        x, y = track.position
        owner = scene.nearest_track(x, y, params.owner_radius_px)
        if owner is not None:
            track.notes[self.kind] = Origin(owner)

    def check_track(self, scene, track_id, track, zone, params):
        origin = track.notes.get(self.kind)
        if origin is None or not origin.owner_moved_on or track.class_id == CAR:
            return None
        now, (x, y) = scene.ts_ms, track.position
        if track.stayed_put(now, params.seconds, params.max_movement_px) is None:
            return None
        age = (now - track.first_seen_ms) / 1000
        if scene.nearest_track(x, y, params.owner_radius_px, exclude=track_id) is not None:
            return None  # someone is still with it
        return self.event(scene, track.first_seen_ms, now, age, params.seconds, [track_id, origin.owner], zone,
                          key=track_id)

    def check_frame(self, scene, params):
        seen_now = {int(t) for t in scene.detections.tracker_id if t >= 0}
        for track in scene.tracks.values():
            origin = track.notes.get(self.kind)
            if origin is not None and origin.owner in seen_now and scene.ts_ms - track.first_seen_ms >= COEXIST_MS:
                origin.owner_moved_on = True
        return []
