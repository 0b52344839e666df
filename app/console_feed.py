"""Live cameras for the operator console without ingest or Triton: frames of the sample car footage (© Intel
Corporation, CC BY 4.0) with the motion detector's tracked boxes, published as the pipeline publishes them — each
frame's JPEG in the frame store, a FrameRef on `frames.v1`, a DetectionBatch on `detections.v1` (capture time = now)
and a CameraStatus on `camera-status.v1` every few seconds. The console's browser test and `load/bench_console.py`
stream through it; `python -m app.console_feed --cameras 16 --fps 5 --seconds 60` runs it on its own.

The boxes are real: the motion detector (the Triton model's code, in process, as Triton configures it) and the
platform's ByteTrack-style tracker over the footage sampled at the feed's rate, computed once.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.scenarios import CAR_VIDEO
from vigil.config import Settings

WIDTH, HEIGHT = 768, 432


@dataclass(frozen=True)
class FootageFrame:
    jpeg: bytes
    xyxy: list[float]  # flattened x1, y1, x2, y2 per box
    class_id: list[int]
    confidence: list[float]
    track_id: list[int]


def footage(seconds: float = 30.0, fps: float = 5.0, video: Path = CAR_VIDEO, quality: int = 85) -> list[FootageFrame]:
    """The first `seconds` of the car footage sampled at `fps`, JPEG-encoded as ingest stores them, with tracked
    boxes from the motion detector."""
    import av
    import cv2

    from app.inprocess import motion_detector
    from vigil.tracker import ByteTracker, detect_and_track

    detector, tracker = motion_detector(), ByteTracker()
    frames, next_s = [], 0.0
    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time is None or frame.time + 1e-6 < next_s:
                continue
            next_s += 1.0 / fps
            rgb = frame.to_ndarray(format="rgb24")
            tracked = detect_and_track(detector, tracker, "feed", rgb)
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            frames.append(FootageFrame(jpeg.tobytes(), [round(float(v), 1) for v in tracked.xyxy.reshape(-1)],
                                       [int(c) for c in tracked.class_id], [round(float(c), 3) for c in tracked.confidence],
                                       [int(t) for t in tracked.tracker_id]))
            if len(frames) >= seconds * fps:
                break
    return frames


def frame_ref(camera_id: str, sequence: int, capture_ms: int, uri: str) -> dict:
    return {"frame_id": f"{camera_id}:{sequence}:{capture_ms}", "camera_id": camera_id, "capture_ts_ms": capture_ms,
            "sequence": sequence, "width": WIDTH, "height": HEIGHT, "encoding": "jpeg", "uri": uri,
            "ingest_ts_ms": capture_ms, "trace_context": {}}


def detection_batch(ref: dict, frame: FootageFrame, track_offset: int = 0, inference_ms: int | None = None) -> dict:
    return {"batch_id": ref["frame_id"], "frame": ref, "model_name": "motion_detector", "model_version": "1",
            "xyxy": frame.xyxy, "class_id": frame.class_id, "confidence": frame.confidence,
            "track_id": [t + track_offset if t >= 0 else t for t in frame.track_id],
            "inference_ts_ms": inference_ms or ref["capture_ts_ms"], "ended_track_ids": []}


def camera_status(camera_id: str, ts_ms: int, published: int, fps: float, state: str = "ONLINE",
                  message: str | None = None) -> dict:
    return {"status_id": f"{camera_id}:{state}:{ts_ms}", "camera_id": camera_id, "ts_ms": ts_ms, "state": state,
            "frames_decoded": published, "frames_published": published, "decode_errors": 0, "reconnects": 0,
            "actual_fps": float(fps), "message": message}


class Feeder:
    """Publishes `cameras` live at `fps` (each a different point of the footage, looping; track ids stay unique per
    loop) until stopped. `states` overrides a camera's reported health (e.g. {"cam-3": "DEGRADED"}); `silent`
    cameras only report their health (an OFFLINE camera sends no frames)."""

    def __init__(self, settings: Settings, cameras: list[str], fps: float = 5.0, frames: list[FootageFrame] | None = None,
                 status_every_s: float = 2.0, frame_refs: bool = True, states: dict[str, str] | None = None,
                 silent: set[str] | None = None):
        from vigil.framestore import open_frame_store
        from vigil.outputs.kafka import KafkaOutput

        self.settings, self.cameras, self.fps = settings, list(cameras), fps
        self.frames = frames or footage(fps=fps)
        self.status_every_s, self.frame_refs = status_every_s, frame_refs
        self.states = dict(states or {})
        self.silent = set(silent or ())
        self.store = open_frame_store(settings.frame_store_uri)
        self.output = KafkaOutput(settings)
        self.published = 0
        self.last_capture_ms: dict[str, int] = {}

    def tick(self, index: int, now_ms: int) -> None:
        from vigil.topics import DETECTIONS, FRAMES

        n = len(self.frames)
        for k, camera_id in enumerate(self.cameras):
            if camera_id in self.silent:
                continue
            position = index + k * 7
            frame = self.frames[position % n]
            uri = self.store.put(camera_id, index, now_ms, frame.jpeg, "jpg")
            ref = frame_ref(camera_id, index, now_ms, uri)
            key = camera_id.encode()
            if self.frame_refs:
                self.output.write(FRAMES, "FrameRef", ref, key=key, timestamp_ms=now_ms)
            self.output.write(DETECTIONS, "DetectionBatch", detection_batch(ref, frame, 1000 * (position // n)),
                              key=key, timestamp_ms=now_ms)
            self.last_capture_ms[camera_id] = now_ms
            self.published += 1
        self.output.poll()

    def statuses(self, now_ms: int) -> None:
        from vigil.topics import CAMERA_STATUS

        for camera_id in self.cameras:
            state = self.states.get(camera_id, "ONLINE")
            self.output.write(CAMERA_STATUS, "CameraStatus",
                              camera_status(camera_id, now_ms, self.published // max(1, len(self.cameras)), self.fps,
                                            state, None if state == "ONLINE" else f"{state.lower()} (feed)"),
                              key=camera_id.encode(), timestamp_ms=now_ms)

    def run(self, stop: threading.Event, seconds: float | None = None) -> int:
        start = time.monotonic()
        interval = 1.0 / self.fps
        index, next_status = 0, start
        while not stop.is_set() and (seconds is None or time.monotonic() - start < seconds):
            now_ms = time.time_ns() // 1_000_000
            if time.monotonic() >= next_status:
                self.statuses(now_ms)
                next_status += self.status_every_s
            self.tick(index, now_ms)
            index += 1
            stop.wait(max(0.0, start + index * interval - time.monotonic()))
        self.output.flush()
        return self.published

    def close(self) -> None:
        self.output.close()


# ---- the console process and browsers, for the browser test and the load script
# Headless Debian chromium as measured here (../shared/ARCHITECTURE.md); Playwright adds --headless and a fresh
# --user-data-dir itself, and cannot download a browser of its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    import shutil

    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        raise FileNotFoundError("Debian's chromium is not installed (make setup installs it)")
    return path


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


def console_env(settings: Settings, port: int, users_file: Path, secret: str, cameras_file: Path | None = None,
                **extra: str) -> dict:
    """The environment of a `vigil console` process on `settings`' broker, store, topics and frame store."""
    import os

    env = {**os.environ, "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "VIGIL_CLICKHOUSE_DSN": settings.clickhouse_dsn, "VIGIL_TOPIC_NAMESPACE": settings.topic_namespace,
           "VIGIL_FRAME_STORE": settings.frame_store_uri, "VIGIL_KAFKA_SESSION_TIMEOUT_MS":
           str(settings.kafka_session_timeout_ms), "VIGIL_CONSOLE_PORT": str(port),
           "VIGIL_CONSOLE_USERS_FILE": str(users_file), "VIGIL_CONSOLE_SECRET_KEY": secret, **extra}
    if cameras_file:
        env["VIGIL_CONSOLE_CAMERAS"] = str(cameras_file)
    return env


def start_console(env: dict, log_path: Path, timeout_s: float = 60.0):
    """`python -m services.console` with `env`; returns the process once /healthz says its live consumer has its
    partitions."""
    import json
    import subprocess
    import sys
    import urllib.request

    log = open(log_path, "ab")
    process = subprocess.Popen([sys.executable, "-m", "services.console"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['VIGIL_CONSOLE_PORT']}/healthz"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the console exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response)["live_consumer"]["assigned"]:
                    return process
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise TimeoutError(f"the console did not get ready in {timeout_s:.0f} s; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.console_feed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--prefix", default="feed-")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-frame-refs", action="store_true", help="publish no FrameRefs (detections only)")
    args = parser.parse_args(argv)
    settings = Settings()
    feeder = Feeder(settings, [f"{args.prefix}{i + 1:02d}" for i in range(args.cameras)], args.fps,
                    frame_refs=not args.no_frame_refs)
    print(f"feeding {args.cameras} cameras at {args.fps} fps for {args.seconds:.0f} s", flush=True)
    published = feeder.run(threading.Event(), args.seconds)
    feeder.close()
    print(f"published {published} frames", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
