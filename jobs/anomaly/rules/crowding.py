"""Many people in view at once (camera-wide), at most once per cool-down period."""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.base import PERSON, Rule, RuleParams


class Crowding(Rule):
    kind = "crowding"
    camera_wide = True

    class Params(RuleParams):
        persons: int = Field(4, ge=1, description="At least this many people in view.")
        cooldown_seconds: float = Field(30.0, gt=0, description="At most one event per period of this length (s).")
        min_seen_seconds: float = Field(1.0, ge=0, description="Only people tracked this long count (flickering "
                                        "false boxes do not).")

    def check_frame(self, scene, params):
        now, detections = scene.ts_ms, scene.detections
        people = sorted(int(t) for c, t in zip(detections.class_id, detections.tracker_id)
                        if c == PERSON and t >= 0 and int(t) in scene.tracks
                        and now - scene.tracks[int(t)].first_seen_ms >= params.min_seen_seconds * 1000)
        bucket = int(now // (params.cooldown_seconds * 1000))
        fired_buckets = scene.state.notes.setdefault(self.kind, set())
        if len(people) < params.persons or bucket in fired_buckets:
            return []
        fired_buckets.add(bucket)
        return [self.event(scene, now, now, len(people), params.persons, people, None, key=bucket)]
