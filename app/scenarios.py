"""Anomaly scenarios built from the real sample footage, with the injected anomalies' times known (used by
`make demo`, load/eval_anomaly.py and the tests).

- stopped: the car video with one frame held for 10 s while two cars are mid-lane (both "stop").
- wrong_way: the car video with the second pass of cars (frames 180-240) played backwards: the grey car then drives
  up the down lane and the red car down the up lane.
- crowd: the person video with, from 52 s to 62 s, three more people composited in from other moments of the same
  footage (pixels that differ from the empty room, shifted sideways so they stand apart): four people in view.
- slow: the car video with frames 180-240 (the second pass of cars) each shown four times: both cars drive on at a
  quarter of their speed for 19 s.
- pedestrian: the car video with a person composited into the down lane from 8 s to 16 s (the person of the person
  video's 52-60 s, pixels unlike the empty room, moved onto the lane).
- normal: the untouched videos (false alarms are counted on them).
Zones for the car camera: the left lane runs down the image, the right lane up (read off the footage); the room camera
is one pedestrian zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from vigil.geometry import Calibration, CountLine, DetectionZone, Lane, TrafficGeometry
from vigil.zones import Zone

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"  # ../shared beside the repo
CAR_VIDEO, PERSON_VIDEO = VIDEOS / "car-detection.mp4", VIDEOS / "one-by-one-person-detection.mp4"
CAR_FPS, PERSON_FPS = 12.5, 10.0
CAR_ZONES = [
    Zone(name="lane-down", kind="traffic", polygon=[(0, 0), (290, 0), (290, 432), (0, 432)], direction=(0, 1)),
    Zone(name="lane-up", kind="traffic", polygon=[(290, 0), (620, 0), (620, 432), (290, 432)], direction=(0, -1)),
]

# Traffic geometry of the car camera (overhead): the two lanes, a count line across each at mid-image, a detection
# zone (virtual loop) around each line, and a calibration read off the red car's size (a 4.6 m x 1.8 m compact sedan
# spans 254 x 146 px): 55 px/m along the lanes, 81 px/m across (the footage is stretched horizontally). Free-flow speed
# is the car park's 15 km/h.
CAR_TRAFFIC = TrafficGeometry(
    lanes=[Lane(name="lane-down", number=1, polygon=[(0, 0), (290, 0), (290, 432), (0, 432)], direction=(0, 1),
                free_flow_kmh=15.0),
           Lane(name="lane-up", number=2, polygon=[(290, 0), (620, 0), (620, 432), (290, 432)], direction=(0, -1),
                free_flow_kmh=15.0)],
    count_lines=[CountLine(name="down-line", lane="lane-down", start=(0, 216), end=(290, 216), positive=(0, 1)),
                 CountLine(name="up-line", lane="lane-up", start=(290, 216), end=(620, 216), positive=(0, -1))],
    detection_zones=[DetectionZone(name="down-loop", lane="lane-down", polygon=[(0, 170), (290, 170), (290, 262), (0, 262)]),
                     DetectionZone(name="up-loop", lane="lane-up", polygon=[(290, 170), (620, 170), (620, 262), (290, 262)])],
    calibration=Calibration(image_points=[(0, 0), (768, 0), (768, 432), (0, 432)],
                            ground_points_m=[(0, 0), (768 / 81, 0), (768 / 81, 432 / 55), (0, 432 / 55)]),
)

# The car camera's own detector: YOLOX-Nano fine-tuned by set-up on the first 14 s of its footage (`make setup`
# runs `vigil detector-adapt` on them); every clip cut from that footage is seen by it.
CAR_DETECTOR = "yolox_nano__car-park"

# The indoor camera has no traffic lanes: one pedestrian zone over the whole room.
ROOM_ZONES = [Zone(name="room", kind="pedestrian", polygon=[(0, 0), (768, 0), (768, 432), (0, 432)])]


@dataclass
class Scenario:
    name: str
    path: Path
    zones: list[Zone]
    injected: dict = field(default_factory=dict)  # kind -> list of (start_s, end_s) in clip time
    seconds: float = 0.0
    traffic: TrafficGeometry | None = None
    detector: str | None = None  # Triton detector for the clip's camera (None: infer's default)
    objects: dict = field(default_factory=dict)  # kind -> real-world events in each injection (default 1)


def _frames(path: Path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _write(path: Path, frames, fps: float) -> None:
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(100))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"qscale": "2"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _composite(base: np.ndarray, background: np.ndarray, extras: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Paste the foreground (pixels unlike the empty background) of each extra frame, shifted by dx, onto base."""
    out = base.copy()
    for frame, dx in extras:
        diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(2)
        mask = np.roll(cv2.dilate((diff > 35).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0, dx, axis=1)
        out[mask] = np.roll(frame, dx, axis=1)[mask]
    return out


def _paste(base: np.ndarray, frame: np.ndarray, background: np.ndarray, dx: int) -> np.ndarray:
    """Paste the foreground of `frame` (pixels unlike its empty `background`), shifted by dx, onto another camera's
    `base` frame."""
    return _composite(base, background, [(frame, dx)]) if frame.shape == base.shape else base


def build(out_dir: Path) -> list[Scenario]:
    out_dir.mkdir(parents=True, exist_ok=True)
    car = _frames(CAR_VIDEO)
    hold_at, hold_s = 200, 10.0
    # the held frame carries fresh sensor noise each time, as a live camera's picture of a stopped car does (an exact
    # repeat is a frozen stream, the frozen-picture rule's case)
    noise = np.random.default_rng(7)
    stopped = (car[:hold_at] + [np.clip(car[hold_at] + noise.normal(0, 2.0, car[hold_at].shape), 0, 255).astype(np.uint8)
                                for _ in range(int(hold_s * CAR_FPS))] + car[hold_at:])
    reverse_from, reverse_to = 180, 240
    wrong = car[:reverse_from] + car[reverse_from:reverse_to + 1][::-1] + car[reverse_to + 1:]
    people = _frames(PERSON_VIDEO)
    background = np.median(np.stack(people[::28]), axis=0).astype(np.uint8)  # people move on: the empty room
    # 52-62 s: one person stands in the room (x ~400-560); three more are pasted in from moments when someone
    # stands there for the whole 10 s (hand annotation: frames 240-340, 760-860, 960-1060), shifted apart, so the
    # clip holds four real people throughout, not fragments of them
    crowd_from, crowd_to = 52.0, 62.0
    crowd = [
        _composite(image, background, [(people[i - 280], -180), (people[i + 240], -324), (people[i + 440], 200)])
        if crowd_from <= i / PERSON_FPS < crowd_to else image
        for i, image in enumerate(people)
    ]
    slow_from, slow_to, slow_factor = 180, 240, 4
    slow = car[:slow_from] + [image for image in car[slow_from:slow_to + 1] for _ in range(slow_factor)] + car[slow_to + 1:]
    walk_from, walk_to = 8.0, 16.0  # clip seconds the person is on the carriageway
    pedestrian = [
        _paste(image, people[int((52.0 + i / CAR_FPS - walk_from) * PERSON_FPS)], background, dx=-300)
        if walk_from <= i / CAR_FPS < walk_to else image
        for i, image in enumerate(car)
    ]
    scenarios = [
        Scenario("stopped", out_dir / "stopped.mp4", CAR_ZONES, {"stopped_vehicle": [(hold_at / CAR_FPS, hold_at / CAR_FPS + hold_s)]},
                 traffic=CAR_TRAFFIC, detector=CAR_DETECTOR, objects={"stopped_vehicle": 2}),
        Scenario("wrong_way", out_dir / "wrong_way.mp4", CAR_ZONES, {"wrong_way": [(reverse_from / CAR_FPS, (reverse_to + 1) / CAR_FPS)]},
                 traffic=CAR_TRAFFIC, detector=CAR_DETECTOR, objects={"wrong_way": 2}),
        Scenario("crowd", out_dir / "crowd.mp4", ROOM_ZONES, {"crowding": [(crowd_from, crowd_to)]}),
        Scenario("slow", out_dir / "slow.mp4", CAR_ZONES,
                 {"slow_vehicle": [(slow_from / CAR_FPS, slow_from / CAR_FPS + (slow_to - slow_from + 1) * slow_factor / CAR_FPS)]},
                 traffic=CAR_TRAFFIC, detector=CAR_DETECTOR, objects={"slow_vehicle": 2}),
        Scenario("pedestrian", out_dir / "pedestrian.mp4", CAR_ZONES, {"pedestrian": [(walk_from, walk_to)]},
                 traffic=CAR_TRAFFIC, detector=CAR_DETECTOR),
        Scenario("normal_cars", CAR_VIDEO, CAR_ZONES, traffic=CAR_TRAFFIC, detector=CAR_DETECTOR),
        Scenario("normal_people", PERSON_VIDEO, ROOM_ZONES),
    ]
    _write(scenarios[0].path, stopped, CAR_FPS)
    _write(scenarios[1].path, wrong, CAR_FPS)
    _write(scenarios[2].path, crowd, PERSON_FPS)
    _write(scenarios[3].path, slow, CAR_FPS)
    _write(scenarios[4].path, pedestrian, CAR_FPS)
    for scenario in scenarios:
        with av.open(str(scenario.path)) as container:
            stream = container.streams.video[0]
            scenario.seconds = float(stream.frames / stream.average_rate)
    return scenarios


# Bad video (issue 12), cut from the car footage from BAD_VIDEO_FROM s on (clip time), the truth of each clip:
# - frozen: the frame at 8 s repeated exactly for 15 s (the stream froze), then the footage goes on;
# - blur: from 8 s to the end, every frame defocused (Gaussian blur, sigma 4 px);
# - low_contrast: from 8 s to the end, fog: each frame blended 70 % into light grey (30 % of its contrast left);
# - camera_moved: from 8 s to the end, the view shifted 60 px right (the edge it uncovers mirrored in); from 16 s the
#   frame is held for 10 s with sensor noise as in the stopped clip (two cars stop mid-lane), which must raise no
#   stopped_vehicle: the moved camera's lane rules are suspended.
# The frozen clip's repeats are exact before encoding; mpeg4's intra refreshes re-quantise them on the way, as a
# frozen camera's encoder does.
BAD_VIDEO_FROM = 8.0
FREEZE_S, BLUR_SIGMA, FOG_KEEP, FOG_GREY, MOVE_PX = 15.0, 4.0, 0.3, 204, (60, 0)


def _defocus(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA)


def _fog(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * FOG_KEEP + FOG_GREY * (1 - FOG_KEEP)).round().astype(np.uint8)


def _moved(image: np.ndarray) -> np.ndarray:
    shift = np.float32([[1, 0, MOVE_PX[0]], [0, 1, MOVE_PX[1]]])
    return cv2.warpAffine(image, shift, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


def build_bad_video(out_dir: Path) -> list[Scenario]:
    """The four bad-video scenarios (frozen, blur, low_contrast, camera_moved), written to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    car = _frames(CAR_VIDEO)
    at = round(BAD_VIDEO_FROM * CAR_FPS)  # frame 100
    frozen = car[:at] + [car[at]] * round(FREEZE_S * CAR_FPS) + car[at:]
    blurred = car[:at] + [_defocus(image) for image in car[at:]]
    foggy = car[:at] + [_fog(image) for image in car[at:]]
    hold_at, hold_s = 200, 10.0  # the stopped clip's held frame: two cars mid-lane, a live picture (sensor noise)
    noise = np.random.default_rng(7)
    held = [np.clip(car[hold_at] + noise.normal(0, 2.0, car[hold_at].shape), 0, 255).astype(np.uint8)
            for _ in range(round(hold_s * CAR_FPS))]
    moved = [*car[:at], *map(_moved, car[at:hold_at]), *map(_moved, held), *map(_moved, car[hold_at:])]
    clips = {"frozen": frozen, "blur": blurred, "low_contrast": foggy, "camera_moved": moved}
    scenarios = []
    for kind, frames in clips.items():
        end = BAD_VIDEO_FROM + FREEZE_S if kind == "frozen" else len(frames) / CAR_FPS
        scenario = Scenario(kind, out_dir / f"{kind}.mp4", CAR_ZONES, {kind: [(BAD_VIDEO_FROM, end)]},
                            seconds=len(frames) / CAR_FPS, traffic=CAR_TRAFFIC, detector=CAR_DETECTOR)
        _write(scenario.path, frames, CAR_FPS)
        scenarios.append(scenario)
    return scenarios


# Drift: the car footage looped three times (90 s); in the drifted clip the picture darkens and softens from 60 s on
# (the slow kind of change a dirty lens, a failing IR lamp or a new season brings, too mild for the bad-video rules).
DRIFT_LOOPS, DRIFT_FROM_S, DRIFT_KEEP, DRIFT_SIGMA = 3, 60.0, 0.5, 1.5


def _darken_soften(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur((image.astype(np.float32) * DRIFT_KEEP).round().astype(np.uint8), (0, 0), DRIFT_SIGMA)


def build_drift(out_dir: Path) -> list[Scenario]:
    """Two clips for the drift service: `steady` (the footage looped as recorded) and `drifted` (darkened and
    blurred from DRIFT_FROM_S on); `injected` holds the drift's truth time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    car = _frames(CAR_VIDEO) * DRIFT_LOOPS
    at = round(DRIFT_FROM_S * CAR_FPS)
    clips = {"steady": (car, {}), "drifted": (car[:at] + [_darken_soften(f) for f in car[at:]],
                                              {"drift": [(DRIFT_FROM_S, len(car) / CAR_FPS)]})}
    scenarios = []
    for name, (frames, injected) in clips.items():
        scenario = Scenario(name, out_dir / f"drift-{name}.mp4", CAR_ZONES, injected, seconds=len(frames) / CAR_FPS,
                            traffic=CAR_TRAFFIC, detector=CAR_DETECTOR)
        _write(scenario.path, frames, CAR_FPS)
        scenarios.append(scenario)
    return scenarios
