"""A vehicle track in a traffic zone moving against the zone's direction, fast enough to have one, for a sustained time."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from jobs.anomaly.rules.base import VEHICLES, Rule, RuleParams

MOTION_WINDOW_MS = 1500  # motion is measured over the last 1.5 s of the track


class WrongWay(Rule):
    kind = "wrong_way"
    zone_kinds = ("traffic",)

    class Params(RuleParams):
        min_speed_px_s: float = Field(20.0, ge=0, description="Slower movement has no meaningful direction (px/s).")
        max_cosine: float = Field(-0.5, ge=-1, le=1, description="Cosine between motion and zone direction at most "
                                  "this: -0.5 is more than 120 degrees against it.")
        seconds: float = Field(1.0, ge=0, description="Sustained this long (s).")

    def check_track(self, scene, track_id, track, zone, params):
        now = scene.ts_ms
        if zone is None or zone.direction_vector is None or track.class_id not in VEHICLES:
            return None  # a person walking up a lane is the pedestrian rule's
        recent = [p for p in track.points if now - p[0] <= MOTION_WINDOW_MS]
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return None
        motion = np.array([recent[-1][1] - recent[0][1], recent[-1][2] - recent[0][2]])
        speed = np.linalg.norm(motion) / ((recent[-1][0] - recent[0][0]) / 1000)
        cosine = float(motion @ zone.direction_vector / max(np.linalg.norm(motion), 1e-9))
        if speed < params.min_speed_px_s or cosine > params.max_cosine:
            track.notes.pop(self.kind, None)  # back on course: the wrong-way time starts again
            return None
        wrong_since_ms = track.notes.setdefault(self.kind, recent[0][0])
        if now - wrong_since_ms < params.seconds * 1000:
            return None
        return self.event(scene, wrong_since_ms, now, -cosine, -params.max_cosine, [track_id], zone, key=track_id)
