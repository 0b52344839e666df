"""A person on the carriageway: a person track whose position stays in a traffic zone for a moment."""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.base import PERSON, Rule, RuleParams


class Pedestrian(Rule):
    kind = "pedestrian"
    zone_kinds = ("traffic",)

    class Params(RuleParams):
        seconds: float = Field(1.5, gt=0, description="In a traffic zone at least this long (s): a person crossing "
                                                      "at a crossing you do not want reported gets its own zone.")

    def check_track(self, scene, track_id, track, zone, params):
        if track.class_id != PERSON or zone is None:
            return None
        # the time since the track entered this zone (its own note), not since it was first seen elsewhere
        entered = track.notes.get(self.kind)
        if entered is None or entered[0] != zone.name:
            track.notes[self.kind] = entered = (zone.name, scene.ts_ms)
        on_road_s = (scene.ts_ms - entered[1]) / 1000
        if on_road_s < params.seconds:
            return None
        return self.event(scene, entered[1], scene.ts_ms, on_road_s, params.seconds, [track_id], zone, key=track_id)
