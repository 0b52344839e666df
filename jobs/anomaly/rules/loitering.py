"""A person in a pedestrian or restricted zone, in view for a long time."""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.base import PERSON, Rule, RuleParams


class Loitering(Rule):
    kind = "loitering"
    zone_kinds = ("pedestrian", "restricted")

    class Params(RuleParams):
        seconds: float = Field(30.0, gt=0, description="In view at least this long (s), like Frigate's loitering_time.")

    def check_track(self, scene, track_id, track, zone, params):
        if track.class_id != PERSON or zone is None:
            return None
        dwell = (scene.ts_ms - track.first_seen_ms) / 1000
        if dwell < params.seconds:
            return None
        return self.event(scene, track.first_seen_ms, scene.ts_ms, dwell, params.seconds, [track_id], zone,
                          key=track_id)
