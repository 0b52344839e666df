"""A vehicle (car, motorcycle, bus, truck) in a traffic zone that has hardly moved for a while."""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.base import VEHICLES, Rule, RuleParams


class StoppedVehicle(Rule):
    kind = "stopped_vehicle"
    zone_kinds = ("traffic",)

    class Params(RuleParams):
        seconds: float = Field(6.0, gt=0, description="Stopped at least this long (s).")
        max_movement_px: float = Field(12.0, gt=0, description="Moved less than this far over those seconds.")

    def check_track(self, scene, track_id, track, zone, params):
        if track.class_id not in VEHICLES or zone is None:
            return None
        now = scene.ts_ms
        start_ms = track.stayed_put(now, params.seconds, params.max_movement_px)
        if start_ms is None:
            return None
        observed = (now - track.first_seen_ms) / 1000
        return self.event(scene, start_ms, now, observed, params.seconds, [track_id], zone, key=track_id)
