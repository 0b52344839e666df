"""Loss of contrast: fog, glare, a dirty or covered lens. The frame's contrast (standard deviation of the grey levels
of ingest's 160 px grey copy) below `min_contrast` for `seconds`.

The sample car park is a low-contrast scene already (9.7-52, median 11.8; the room 56-72); fog that keeps 30 % of
its contrast brings it to about 3.7. The event's score is the median contrast of the episode's flat frames.
"""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.bad_video import PictureParams, PictureRule


class LowContrast(PictureRule):
    kind = "low_contrast"

    class Params(PictureParams):
        min_contrast: float = Field(6.0, gt=0, description="More contrast than this is fine (grey-level std).")
        seconds: float = Field(5.0, gt=0, description="Flat this long (s).")

    def judge(self, quality, params, memory, now_ms):
        return quality.contrast < params.min_contrast, quality.contrast

    def threshold(self, params):
        return params.min_contrast
