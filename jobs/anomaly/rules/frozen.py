"""A frozen picture: the stream keeps delivering the same image (a hung encoder or decoder), for a while.

Ingest's `still_ms` already is a duration (exact repeats, through codec refreshes; a live static scene never repeats
exactly), so the rule fires on the first frame whose picture has been still for `seconds`; the episode starts when the
picture froze. While frozen, the camera's lane rules are suspended (the picture shows no traffic: every car in it
would read as stopped). The default `seconds` is above the 10 s held frame of the stopped scenario, which stands for
two stopped cars and must keep raising stopped_vehicle (it does so after 6 s, before any frozen verdict).
"""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.bad_video import PictureParams, PictureRule


class Frozen(PictureRule):
    kind = "frozen"

    class Params(PictureParams):
        seconds: float = Field(12.0, gt=0, description="The picture still (exactly repeated) this long (s).")
        clear_seconds: float = Field(5.0, gt=0, description="Live again this long (s) before the rule re-arms.")
        suspend_lane_rules: bool = Field(True, description="While frozen, the camera's lane rules are suspended.")

    def judge(self, quality, params, memory, now_ms):
        return quality.still_ms > 0, quality.still_ms / 1000

    def score(self, figures, quality):
        return quality.still_ms / 1000  # seconds frozen when it fired

    def fired_start(self, memory, now_ms, quality, params):
        if quality.still_ms < params.seconds * 1000:
            return None
        return now_ms - quality.still_ms
