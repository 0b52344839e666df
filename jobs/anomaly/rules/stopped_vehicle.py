"""A car in a traffic zone that has hardly moved for a while."""

from __future__ import annotations

import math

from pydantic import Field

from jobs.anomaly.rules.base import CAR, Rule, RuleParams


class StoppedVehicle(Rule):
    kind = "stopped_vehicle"
    zone_kinds = ("traffic",)

    class Params(RuleParams):
        seconds: float = Field(6.0, gt=0, description="Stopped at least this long (s).")
        max_movement_px: float = Field(12.0, gt=0, description="Moved less than this far over those seconds.")

    def check_track(self, scene, track_id, track, zone, params):
        if track.class_id != CAR or zone is None:
            return None
        now, (x, y) = scene.ts_ms, track.position
        window = [p for p in track.points if now - p[0] <= params.seconds * 1000]
        observed = (now - track.first_seen_ms) / 1000
        # the window must be (nearly) filled: a car seen only briefly has not shown it stands still
        if observed < params.seconds or not window or now - window[0][0] < 0.8 * params.seconds * 1000:
            return None
        spread = max(math.hypot(px - x, py - y) for _, px, py in window)
        if spread >= params.max_movement_px:
            return None
        return self.event(scene, window[0][0], now, observed, params.seconds, [track_id], zone, key=track_id)
