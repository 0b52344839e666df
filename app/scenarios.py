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


def _write(path: Path, frames, fps: float, qscale: int | None = None) -> None:
    """MPEG-4 Part 2. `qscale` None: the encoder's default rate control (about 20-70 kbit/s on these clips, a hard
    compression; every scenario clip and the figures measured on them use it). A number (2-31): a constant quantiser,
    2 being near-lossless. (These clips long passed {"qscale": "2"} as an option, which libavcodec ignores: qscale is an
    ffmpeg command-line shorthand for the `qscale` flag plus global_quality.)"""
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(100))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if qscale is not None:
            stream.options = {"flags": "+qscale", "global_quality": str(int(qscale) * 118)}  # FF_QP2LAMBDA = 118
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


# The two AID rules of issue 12 beyond the per-vehicle ones, cut from the car footage, the truth of each clip:
# - debris: from 8 s (frame 100) to the end, a round white table top lies in lane-down (x 20-122, y 60-115): the table
#   top of the person video's empty room (its frame 0, an ellipse cut by hand, scaled to 0.7: about 1.3 m x 1 m on
#   this view), pasted where the car park shows through, so a car passing over it hides it. The car camera's
#   detector boxes it as a car that never moves; the rules must call it debris, once, and no stopped vehicle.
# - queue: the second pass of cars from frame 188 to 240 each shown QUEUE_SLOW times, with a copy of the grey car
#   QUEUE_AHEAD frames further on pasted into lane-down (its foreground, restricted to the lane, at the frame's
#   exposure) from frame 153, when it enters the view: the copy drives in ahead of the grey car (which enters at frame
#   179), and from frame 188, both in view, the two crawl 40 px apart, nose to tail, until the copy leaves the view
#   (frame 203 of the slowed pass). The red car crawls alone up lane-up: a slow vehicle, no queue. Slowed 4x (the
#   slow clip) the two would be in view together for 4 s, too short for a 4-s rule; slowed 8x they are, for 8 s.
DEBRIS_FROM, DEBRIS_AT, DEBRIS_SCALE = 100, (20, 60), 0.7
QUEUE_FROM, QUEUE_TO, QUEUE_SLOW, QUEUE_AHEAD, QUEUE_LEADER_GONE = 188, 240, 8, 26, 203
LANE_DOWN_X = 290  # lane-down's right edge
GREY_CAR_ENTERS = 179  # the frame the grey car of the second pass enters lane-down (read off the footage)


def _table_top(scale: float = DEBRIS_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """The room's round table top (rgb, and its mask 0-255), cut from the person video's first frame."""
    with av.open(str(PERSON_VIDEO)) as container:
        room = next(f.to_ndarray(format="rgb24") for f in container.decode(video=0))
    patch = room[76:154, 382:528].copy()
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.ellipse(mask, (72, 38), (71, 36), 0, 0, 360, 255, -1)
    resize = dict(fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.resize(patch, None, **resize), cv2.resize(mask, None, **resize)


def _exposure(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The frame's auto-exposure as an offset from the empty background, per channel (the car park's camera darkens
    the whole picture by up to 60 grey levels while a white car is in view)."""
    return np.median(image.astype(np.int16) - background, axis=(0, 1))


def _lay(base: np.ndarray, background: np.ndarray, patch: np.ndarray, mask: np.ndarray, at: tuple[int, int]):
    """Lay `patch` on the road at `at` (x, y), at the frame's exposure, where the road shows (a car over it hides
    it)."""
    out, (x, y), (h, w) = base.copy(), at, mask.shape
    offset = _exposure(base, background)
    road = np.abs(base[y:y + h, x:x + w].astype(np.int16) - offset - background[y:y + h, x:x + w]).max(2) < 35
    alpha = (mask.astype(np.float32) / 255 * road)[..., None]
    exposed = np.clip(patch.astype(np.float32) + offset, 0, 255)
    out[y:y + h, x:x + w] = (alpha * exposed + (1 - alpha) * out[y:y + h, x:x + w]).round().astype(np.uint8)
    return out


def build_aid(out_dir: Path) -> list[Scenario]:
    """The debris and queue scenarios, written to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    car = _frames(CAR_VIDEO)
    background = np.median(np.stack(car[::10]), axis=0).astype(np.uint8)  # cars move on: the empty car park
    patch, mask = _table_top()
    debris = car[:DEBRIS_FROM] + [_lay(image, background, patch, mask, DEBRIS_AT) for image in car[DEBRIS_FROM:]]
    lane = np.zeros(background.shape[:2], dtype=bool)
    lane[:, :LANE_DOWN_X] = True

    def with_leader(j: int) -> np.ndarray:  # frame j with the grey car's copy from frame j + QUEUE_AHEAD in lane-down
        if j + QUEUE_AHEAD >= len(car):
            return car[j]
        ahead = car[j + QUEUE_AHEAD].astype(np.int16) - _exposure(car[j + QUEUE_AHEAD], background)
        diff = np.abs(ahead - background).max(2)
        car_mask = cv2.morphologyEx((diff > 35).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((25, 25), np.uint8))
        copy = (cv2.dilate(car_mask, np.ones((5, 5), np.uint8)) > 0) & lane
        out = car[j].copy()
        out[copy] = np.clip(ahead + _exposure(car[j], background), 0, 255).astype(np.uint8)[copy]
        return out

    leader_from = GREY_CAR_ENTERS - QUEUE_AHEAD  # the copy enters the view
    queue = (car[:leader_from] + [with_leader(j) for j in range(leader_from, QUEUE_FROM)]
             + [with_leader(j) for j in range(QUEUE_FROM, QUEUE_TO + 1) for _ in range(QUEUE_SLOW)]
             + car[QUEUE_TO + 1:])
    slow_start_s = QUEUE_FROM / CAR_FPS
    queue_end_s = slow_start_s + (QUEUE_LEADER_GONE - QUEUE_FROM) * QUEUE_SLOW / CAR_FPS
    slowed_end_s = slow_start_s + (QUEUE_TO - QUEUE_FROM + 1) * QUEUE_SLOW / CAR_FPS
    scenarios = [
        Scenario("debris", out_dir / "debris.mp4", CAR_ZONES, {"debris": [(DEBRIS_FROM / CAR_FPS, len(car) / CAR_FPS)]},
                 seconds=len(debris) / CAR_FPS, traffic=CAR_TRAFFIC, detector=CAR_DETECTOR),
        Scenario("queue", out_dir / "queue.mp4", CAR_ZONES,
                 {"queue": [(slow_start_s, queue_end_s)], "slow_vehicle": [(slow_start_s, slowed_end_s)]},
                 seconds=len(queue) / CAR_FPS, traffic=CAR_TRAFFIC, detector=CAR_DETECTOR),
    ]
    _write(scenarios[0].path, debris, CAR_FPS)
    _write(scenarios[1].path, queue, CAR_FPS)
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
