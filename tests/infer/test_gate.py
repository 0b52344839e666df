"""The motion gate on real frames: a still picture with nothing tracked skips the detector, motion or a live track
does not, and a frame still goes through every max_skip_s."""

import av
import numpy as np

from services.infer.gate import GateSettings, MotionGate
from tests.conftest import CAR_VIDEO


def _frames(n):
    with av.open(str(CAR_VIDEO)) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(n), container.decode(video=0))]


def test_still_frames_skip_moving_frames_and_live_tracks_do_not():
    gate = MotionGate(GateSettings(max_skip_s=60))
    empty = _frames(1)[0]  # t = 0: the car park before any car
    assert gate.needs_inference("cam", 0, empty, live_tracks=0), "a camera's first frame is always detected"
    assert not any(gate.needs_inference("cam", 200 * i, empty.copy(), live_tracks=0) for i in range(1, 10))
    assert gate.needs_inference("cam", 2000, empty, live_tracks=1), "a tracked (e.g. stopped) object keeps inference on"
    car = _frames(91)[90]  # a car in the middle of the lane
    assert gate.needs_inference("cam", 2200, car, live_tracks=0), "a car drives in: motion"
    assert gate.stats()["gate_skipped"] == 9


def test_a_frame_goes_through_every_max_skip_s_and_on_a_clock_jump():
    gate = MotionGate(GateSettings(max_skip_s=2.0))
    still = np.full((432, 768, 3), 90, np.uint8)
    decisions = [gate.needs_inference("cam", 200 * i, still, 0) for i in range(21)]
    assert [i for i, d in enumerate(decisions) if d] == [0, 10, 20]
    assert gate.needs_inference("cam", 0, still, 0), "capture time went back (a replay restarted)"


def test_disabled_gate_detects_everything_and_cameras_are_separate():
    gate = MotionGate(GateSettings(enabled=False))
    still = np.zeros((100, 100, 3), np.uint8)
    assert all(gate.needs_inference("a", 200 * i, still, 0) for i in range(5))
    gate = MotionGate()
    gate.needs_inference("a", 0, still, 0)
    assert gate.needs_inference("b", 0, still, 0), "another camera's first frame"
