"""What the bad-video rules share (frozen, blur, low_contrast, camera_moved): camera-wide picture rules on the frame's
`VideoQuality` figures, which ingest measures where the pixels are decoded (services/ingest/quality.py).

Each rule judges every frame good, bad, or not at all (no figures, or a picture it cannot judge), and keeps the
verdicts of the last seconds in the camera's RuleState. An episode:

- **fires** once the picture has been bad for the rule's `seconds`: at least `FIRE_SHARE` of the frames of the last
  `seconds` bad (a frame it could not judge is not bad), over (nearly) all of that time. One event, id
  `<camera>:<kind>:<start_ms>` (the episode's first bad frame in that window), so a replay gives the same id;
- then stays **active**, with no more events, until the picture is good again for `clear_seconds` (at least
  `CLEAR_SHARE` of the frames of the last `clear_seconds` good; a frame it could not judge is not good), when the
  rule **re-arms**.

With `suspend_lane_rules`, an active episode suspends the camera's per-track rules (`RuleState.suspended`, which the
job passes on to the incident stage; see base.py) until it re-arms. camera_moved also holds them back from its first
moved frame on (`RuleState.guarded`: a moved view puts tracks in the wrong zones at once, and a jump of every track
could read as wrong-way driving before the episode fires), until a good frame or `seconds` without a moved one; that
guard alone flags no incident.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field

from jobs.anomaly.rules.base import Rule, RuleParams
from vigil.detections import VideoQuality

FIRE_SHARE = 0.6  # bad frames of the last `seconds` that make an episode
CLEAR_SHARE = 0.9  # good frames of the last `clear_seconds` that end it
FILLED = 0.8  # the frames kept must span this much of a window


class PictureParams(RuleParams):
    seconds: float = Field(5.0, gt=0, description="Bad for this long (s) before the rule fires.")
    clear_seconds: float = Field(10.0, gt=0, description="Good again for this long (s) before it re-arms.")
    suspend_lane_rules: bool = Field(False, description="While it holds, the camera's per-track (lane) rules are "
                                     "suspended and its incidents say detection_suspended.")


@dataclass
class PictureMemory:
    """One picture rule's memory of a camera (in RuleState.notes)."""

    verdicts: deque = field(default_factory=deque)  # (ts_ms, bad: True / False / None = not judged), last seconds
    figures: deque = field(default_factory=deque)  # (ts_ms, figure) of the bad frames, for the event's score
    active_since_ms: int | None = None  # start of the episode that fired and has not re-armed
    last_bad_ms: int | None = None  # the latest bad frame, while no good frame followed it

    def pending(self, now_ms: int, seconds: float) -> bool:
        """A bad frame less than `seconds` ago and no good one since: an episode may be starting."""
        return self.last_bad_ms is not None and now_ms - self.last_bad_ms < seconds * 1000


class PictureRule(Rule):
    """A bad-video rule: subclasses set `kind`, `Params` (a PictureParams) and implement `judge`."""

    camera_wide = True
    picture = True
    Params: ClassVar[type[PictureParams]] = PictureParams
    suspend_while_pending: ClassVar[bool] = False  # suspend from the first bad frame, before the episode fires

    def judge(self, quality: VideoQuality, params, memory: PictureMemory, now_ms: int) -> tuple[bool, float] | None:
        """(bad?, the figure the event reports), or None where this frame cannot be judged."""
        raise NotImplementedError

    def threshold(self, params) -> float:
        """The threshold the event reports beside its score."""
        return params.seconds

    def score(self, figures: list[float], quality: VideoQuality) -> float:
        """The event's score: by default the median figure of the episode's bad frames."""
        return sorted(figures)[len(figures) // 2]

    def fired_start(self, memory: PictureMemory, now_ms: int, quality: VideoQuality, params) -> int | None:
        """The episode's start if the picture has been bad for `seconds` (FIRE_SHARE of the frames of the last
        `seconds` bad, over nearly all of it), else None."""
        window_ms = params.seconds * 1000
        window = [(ts, bad) for ts, bad in memory.verdicts if now_ms - ts <= window_ms]
        if not window or now_ms - window[0][0] < FILLED * window_ms:
            return None
        bad = [ts for ts, is_bad in window if is_bad]
        if len(bad) < FIRE_SHARE * len(window):
            return None
        return bad[0]

    def cleared(self, memory: PictureMemory, now_ms: int, params) -> bool:
        """Good again: CLEAR_SHARE of the frames of the last `clear_seconds` good, over nearly all of it."""
        window_ms = params.clear_seconds * 1000
        window = [(ts, bad) for ts, bad in memory.verdicts if now_ms - ts <= window_ms]
        if not window or now_ms - window[0][0] < FILLED * window_ms:
            return False
        return sum(bad is False for _, bad in window) >= CLEAR_SHARE * len(window)

    def check_frame(self, scene, params):
        memory = scene.state.notes.get(self.kind)
        if memory is None:
            memory = scene.state.notes[self.kind] = PictureMemory()
        if not params.enabled:
            scene.state.suspended.pop(self.kind, None)
            return []
        now, quality = scene.ts_ms, scene.quality
        verdict = None if quality is None else self.judge(quality, params, memory, now)
        bad = None if verdict is None else verdict[0]
        memory.verdicts.append((now, bad))
        if bad:
            memory.figures.append((now, verdict[1]))
            memory.last_bad_ms = now
        elif bad is False:
            memory.last_bad_ms = None
        keep_ms = max(params.seconds, params.clear_seconds) * 1000
        while memory.verdicts and now - memory.verdicts[0][0] > keep_ms:
            memory.verdicts.popleft()
        while memory.figures and now - memory.figures[0][0] > keep_ms:
            memory.figures.popleft()
        events = []
        if memory.active_since_ms is None:
            start = self.fired_start(memory, now, quality, params) if bad is not None else None
            if start is not None:
                memory.active_since_ms = start
                figures = [f for ts, f in memory.figures if ts >= start] or [verdict[1]]
                events.append(self.event(scene, start, now, self.score(figures, quality), self.threshold(params),
                                         [], None, key=start))
        elif bad is False and self.cleared(memory, now, params):
            memory.active_since_ms = None
            memory.figures.clear()
        self._suspend(scene, memory, params)
        return events

    def _suspend(self, scene, memory: PictureMemory, params) -> None:
        state, now = scene.state, scene.ts_ms
        state.suspended.pop(self.kind, None)
        state.guarded.pop(self.kind, None)
        if not params.suspend_lane_rules:
            return
        if memory.active_since_ms is not None:
            state.suspended[self.kind] = memory.active_since_ms
        elif self.suspend_while_pending and memory.pending(now, params.seconds):
            state.guarded[self.kind] = memory.last_bad_ms
