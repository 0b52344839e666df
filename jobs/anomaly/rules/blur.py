"""A blurred or defocused picture: the frame's sharpness (variance of the Laplacian of ingest's 160 px grey copy)
below `min_sharpness` for `seconds`.

Sharpness depends on the scene: the sample car park (plain asphalt) reads 135-1000, the room 785-1370, and a
defocus of the car park (Gaussian sigma 4 px) about 22. Set `min_sharpness` per camera to about a third of its
normal figure. A picture with hardly any contrast shows no detail to judge (fog squashes sharpness too): below
`min_contrast` the rule does not judge the frame, which is low_contrast's case. The event's score is the median
sharpness of the episode's blurred frames (it fell below the threshold).
"""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.bad_video import PictureParams, PictureRule


class Blur(PictureRule):
    kind = "blur"

    class Params(PictureParams):
        min_sharpness: float = Field(50.0, gt=0, description="Sharper than this is in focus (Laplacian variance).")
        min_contrast: float = Field(6.0, ge=0, description="Frames with less contrast are not judged (too flat).")
        seconds: float = Field(5.0, gt=0, description="Blurred this long (s).")

    def judge(self, quality, params, memory, now_ms):
        if quality.contrast < params.min_contrast:
            return None
        return quality.sharpness < params.min_sharpness, quality.sharpness

    def threshold(self, params):
        return params.min_sharpness
