"""The camera moved: its view shifted against the reference image ingest keeps (phase correlation, `shift_px`), or
changed so much that the reference's structure no longer matches it (`similarity`), for `seconds`.

From the first moved frame until the view is back for `clear_seconds`, the camera's lane rules (every per-track rule:
stopped_vehicle, wrong_way, ...) are suspended, because its zones no longer lie on its lanes, and its incidents say
`detection_suspended`, as NTCIP's detectionAutoSuspended. Ingest refreshes the reference only while the view has not
moved, so a camera shifted by a measurable amount stays moved until it is pointed back (or ingest restarts and learns
the new view); a change of view phase correlation cannot measure (a camera turned away) reads as moved by its
similarity, and ingest learns it as the new view within about 16 s: the rule fires once, then re-arms.

Measured on the sample car park at 5 fps: its own frames read shift 0-6.6 px, similarity 0.50-0.99, detail 0.92-5.1;
moved 60 px, shift 58-71 px wherever the structure is in view (0 where traffic hides it), similarity 0.06-0.32. A
view half like its reference (between `min_similarity` and `back_similarity`: traffic over it) proves nothing either
way once moved, so it neither holds the episode nor ends it. Similarity also drops where the picture got worse rather
than different (fog with a car in it: 0.16): frames with little contrast or much less detail than the reference
(`min_contrast`, `min_detail`) are judged on their shift only, which needs the reference's structure to line up again
(blur and low_contrast cover the worse picture). The event's score is the median shift (frame px) of the episode's
moved frames: a change of view that phase correlation could not measure scores below the threshold.
"""

from __future__ import annotations

from pydantic import Field

from jobs.anomaly.rules.bad_video import PictureParams, PictureRule


class CameraMoved(PictureRule):
    kind = "camera_moved"
    suspend_while_pending = True

    class Params(PictureParams):
        min_shift_px: float = Field(20.0, gt=0, description="A scene shifted at least this far (frame px) moved.")
        min_similarity: float = Field(0.2, ge=-1, le=1, description="A view less similar to the reference than this "
                                      "moved (1: the same view).")
        back_similarity: float = Field(0.5, ge=-1, le=1, description="Once moved, a view this similar is back; one "
                                       "between the two similarities proves nothing either way.")
        min_detail: float = Field(0.7, ge=0, description="Frames with less detail than this share of the "
                                  "reference's are judged on their shift only.")
        min_contrast: float = Field(6.0, ge=0, description="Frames with less contrast are judged on their shift "
                                    "only (too flat: low_contrast's case).")
        seconds: float = Field(3.0, gt=0, description="Moved this long (s).")
        suspend_lane_rules: bool = Field(True, description="While moved, the camera's lane rules are suspended.")

    def judge(self, quality, params, memory, now_ms):
        if quality.shift_px is None:  # ingest has not learnt the reference view yet
            return None
        if quality.shift_px >= params.min_shift_px:
            return True, quality.shift_px
        if quality.similarity is None or quality.detail is None or quality.detail < params.min_detail \
                or quality.contrast < params.min_contrast:
            return None  # too little to see: a worse picture is not a different view
        if quality.similarity < params.min_similarity:
            return True, quality.shift_px
        if quality.similarity >= params.back_similarity or \
                (memory.active_since_ms is None and not memory.pending(now_ms, params.seconds)):
            return False, quality.shift_px
        return None  # moved, or about to be: a view half like the reference (traffic over it) does not say it is back

    def threshold(self, params):
        return params.min_shift_px
