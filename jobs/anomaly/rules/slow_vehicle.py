"""A slow vehicle: one that keeps moving in a traffic zone, but far slower than traffic there, for a sustained time.

Speeds are image speeds (px/s) of the track's anchor, so the thresholds are per camera and zone (a far lane moves
fewer pixels per second than a near one): set them in the camera file. Stopped vehicles are the stopped-vehicle
rule's (the minimum speed keeps the two apart).
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from jobs.anomaly.rules.base import VEHICLES, Rule, RuleParams


class SlowVehicle(Rule):
    kind = "slow_vehicle"
    zone_kinds = ("traffic",)

    class Params(RuleParams):
        max_speed_px_s: float = Field(35.0, gt=0, description="Slower than this (px/s) counts as slow (the sample car "
                                                               "park's traffic moves at 200-250 px/s).")
        min_speed_px_s: float = Field(8.0, ge=0, description="Slower than this is stopped, not slow (px/s).")
        seconds: float = Field(4.0, gt=0, description="Slow for at least this long (s).")

        @model_validator(mode="after")
        def _ordered(self):
            if self.min_speed_px_s >= self.max_speed_px_s:
                raise ValueError(f"min_speed_px_s ({self.min_speed_px_s}) must be below max_speed_px_s "
                                 f"({self.max_speed_px_s})")
            return self

    def check_track(self, scene, track_id, track, zone, params):
        if track.class_id not in VEHICLES or zone is None:
            return None
        now, window_ms = scene.ts_ms, params.seconds * 1000
        window = [p for p in track.points if now - p[0] <= window_ms]
        # the window must be (nearly) filled: a track followed only briefly has not shown its speed
        if not window or now - window[0][0] < 0.8 * window_ms or (now - track.first_seen_ms) < window_ms:
            return None
        path = sum(math.hypot(b[1] - a[1], b[2] - a[2]) for a, b in zip(window, window[1:]))
        net = math.hypot(window[-1][1] - window[0][1], window[-1][2] - window[0][2])
        speed = net / ((window[-1][0] - window[0][0]) / 1000)
        # slow and steady: moving on (net progress, not jitter around a point), and slow in both halves of the window
        # (a car braking to a stop, or setting off, averages a low speed too, but not in each half)
        middle = next(p for p in window if p[0] >= (window[0][0] + now) / 2)
        halves = [(a, b) for a, b in ((window[0], middle), (middle, window[-1])) if b[0] > a[0]]
        half_speeds = [math.hypot(b[1] - a[1], b[2] - a[2]) / ((b[0] - a[0]) / 1000) for a, b in halves]
        if (not (params.min_speed_px_s <= speed < params.max_speed_px_s) or net < 0.6 * path or len(half_speeds) < 2
                or not all(params.min_speed_px_s <= v < params.max_speed_px_s for v in half_speeds)):
            return None
        return self.event(scene, window[0][0], now, speed, params.max_speed_px_s, [track_id], zone, key=track_id)
