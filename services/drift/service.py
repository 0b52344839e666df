"""The drift service: `detections.v1` → per camera, its picture and detector statistics against its baseline
(`vigil.drift`) → the `vigil_drift_psi` gauges, and a `drift` AnomalyEvent on `events.v1` when a camera departs
from its baseline (`vigil drift`, `python -m services.drift`).

The baseline is the first `VIGIL_DRIFT_BASELINE_S` of capture time the service sees of a camera, saved to
`<data_dir>/drift/<camera>.json` and loaded from there after a restart (delete the file, or `--rebaseline CAMERA`,
to learn the camera again, e.g. after re-aiming it on purpose or adapting its detector). The remedy the event points
to is the labelling loop: `vigil review-export --camera ...` writes the camera's most uncertain frames for review,
and `vigil detector-adapt` fine-tunes its detector on them.

At-least-once through the service runtime; a replay re-judges the same capture times and emits the same event ids
(`<camera>:drift:<window start>`), so ClickHouse keeps one row per episode.
"""

from __future__ import annotations

import logging
import shlex
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import Field

from vigil.config import Settings
from vigil.drift import Baseline, CameraDrift, DriftSettings
from vigil.metrics import DRIFT, DRIFT_EVENTS, DRIFTED
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, Handler, Incoming, StreamService
from vigil.runtime import main as run_main
from vigil.topics import DETECTIONS, EVENTS

log = logging.getLogger("vigil.drift")


def remedy_command(camera_id: str, since_ms: int, until_ms: int) -> str:
    """The `vigil review-export` command that exports the drifted window's most uncertain frames for review."""
    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"vigil review-export --camera {shlex.quote(camera_id)} --since {iso(since_ms)} --until {iso(until_ms + 1000)} "
            f"--out {shlex.quote(f'review-{camera_id}-{iso(since_ms)[:10]}')}")


class DriftServiceSettings(Settings):
    consumer_group: str = "vigil-drift"
    drift_baseline_s: float = Field(60.0, gt=0, description="Capture time of a camera that becomes its baseline.")
    drift_window_s: float = Field(30.0, gt=0, description="Recent capture time compared with the baseline.")
    drift_check_every_s: float = Field(10.0, gt=0, description="How often (capture time) a camera is judged.")
    drift_threshold: float = Field(0.25, gt=0, description="PSI over which a feature has drifted.")
    drift_consecutive: int = Field(2, ge=1, description="Checks in a row over the threshold before a drift event.")
    drift_min_values: int = Field(20, ge=1, description="Fewest values of a feature in a window for it to be judged.")
    drift_dir: Path | None = Field(None, description="Where baselines are kept; default <data_dir>/drift.")

    @property
    def drift_path(self) -> Path:
        return self.drift_dir or self.data_dir / "drift"

    def drift_settings(self) -> DriftSettings:
        return DriftSettings(baseline_s=self.drift_baseline_s, window_s=self.drift_window_s,
                             check_every_s=self.drift_check_every_s, threshold=self.drift_threshold,
                             consecutive=self.drift_consecutive, min_values=self.drift_min_values)


def baseline_file(settings: DriftServiceSettings, camera_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in camera_id)
    return settings.drift_path / f"{safe}.json"


class JudgeDrift(Handler):
    def __init__(self, settings: DriftServiceSettings, output: KafkaOutput, dead_letters: DeadLetters):
        self.settings, self.output, self.dead_letters = settings, output, dead_letters
        self.cameras: dict[str, CameraDrift] = {}
        self.frames, self.checks, self.events = 0, 0, 0
        self.baselines_built = 0

    def camera(self, camera_id: str) -> CameraDrift:
        if camera_id not in self.cameras:
            path = baseline_file(self.settings, camera_id)
            baseline = None
            if path.exists():
                try:
                    baseline = Baseline.load(path)
                except (ValueError, TypeError, KeyError) as exc:
                    log.error("camera %s: baseline %s unreadable (%s); learning it again", camera_id, path, exc)
            self.cameras[camera_id] = CameraDrift(camera_id, self.settings.drift_settings(), baseline)
        return self.cameras[camera_id]

    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        for incoming in batch:
            record, frame = incoming.record, incoming.record["frame"]
            try:
                boxes = np.asarray(record["xyxy"], float).reshape(-1, 4)
                scores, classes = record["confidence"], record["class_id"]
                if not len(boxes) == len(scores) == len(classes):
                    raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes")
            except (KeyError, TypeError, ValueError) as exc:
                self.dead_letters.send(incoming.message, f"inconsistent detections: {exc}")
                continue
            quality = frame.get("quality") or {}
            camera_id = frame["camera_id"]
            built, verdict = self.camera(camera_id).observe(
                frame["capture_ts_ms"], sharpness=quality.get("sharpness"), contrast=quality.get("contrast"),
                scores=scores, boxes=boxes, classes=classes, width=frame["width"], height=frame["height"])
            self.frames += 1
            if built is not None:
                built.save(baseline_file(self.settings, camera_id))
                self.baselines_built += 1
                log.info("camera %s: baseline from %d frames saved", camera_id, built.frames)
            if verdict is not None:
                self._judged(verdict)
        return True

    def _judged(self, verdict) -> None:
        self.checks += 1
        for feature, value in verdict.scores.items():
            DRIFT.labels(verdict.camera_id, feature).set(value)
        DRIFTED.labels(verdict.camera_id).set(1 if self.cameras[verdict.camera_id].in_episode else 0)
        if not verdict.raised:
            return
        worst = sorted(verdict.drifted, key=lambda f: -verdict.scores[f])
        start = verdict.ts_ms - int(self.settings.drift_window_s * 1000)
        event = dict(event_id=f"{verdict.camera_id}:drift:{start}", camera_id=verdict.camera_id, kind="drift",
                     window_start_ms=start, window_end_ms=verdict.ts_ms, score=verdict.scores[worst[0]],
                     threshold=self.settings.drift_threshold, track_ids=[], zone=None,
                     top_cells=[f"{f}={verdict.scores[f]:.2f}" for f in worst], model_version=None,
                     emitted_ts_ms=verdict.ts_ms)
        self.output.write(EVENTS, "AnomalyEvent", event, key=verdict.camera_id.encode(), timestamp_ms=verdict.ts_ms)
        DRIFT_EVENTS.labels(verdict.camera_id).inc()
        self.events += 1
        log.warning("camera %s drifted from its baseline: %s; review its frames with `%s`", verdict.camera_id,
                    ", ".join(event["top_cells"]), remedy_command(verdict.camera_id, start, verdict.ts_ms))

    def stats(self) -> dict:
        return {"frames": self.frames, "checks": self.checks, "drift_events": self.events,
                "baselines_built": self.baselines_built, "cameras": len(self.cameras)}


class DriftService(StreamService):
    def __init__(self, settings: DriftServiceSettings):
        self.kafka = KafkaOutput(settings)
        dead_letters = DeadLetters(self.kafka, "drift", settings)
        self.judge = JudgeDrift(settings, self.kafka, dead_letters)
        super().__init__(settings, "drift", [DETECTIONS], self.judge, [self.kafka], dead_letters,
                         settings.consumer_group, batch_size=500, poll_timeout_s=0.2, codec=self.kafka.codec)


def main(argv: list[str] | None = None) -> int:
    def add(parser):
        parser.add_argument("--rebaseline", action="append", default=[], metavar="CAMERA",
                            help="forget this camera's baseline and learn it again from what comes next")

    def build(args):
        settings = DriftServiceSettings()
        for camera_id in args.rebaseline:
            baseline_file(settings, camera_id).unlink(missing_ok=True)
        return DriftService(settings)

    return run_main("vigil drift", "Judge each camera's picture and detections against its baseline; raise drift events.",
                    build, add, argv=argv)
