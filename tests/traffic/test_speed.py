"""Speeds through a perspective calibration: synthetic tracks at known speeds, measured within 2 km/h."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.traffic.speed import TrackSpeeds
from tests.traffic.synthetic import CALIBRATION, drive


def feed(speeds: TrackSpeeds, points, until_y_px: float | None = None) -> None:
    for ts_ms, track_id, _, x, y in points:
        if until_y_px is not None and y > until_y_px:
            break
        speeds.observe(ts_ms, np.array([track_id]), np.array([[x, y]]))


@pytest.mark.parametrize("speed_kmh", [20, 50, 90])
@pytest.mark.parametrize("at_m", [20.0, 45.0])  # mid-image, and far up the road where a pixel is ~0.25 m
def test_known_speeds_are_measured_within_2_kmh(speed_kmh, at_m):
    speeds = TrackSpeeds(CALIBRATION)
    (at_y_px,) = CALIBRATION.to_image(np.array([[1.75, at_m]]))[:, 1]
    feed(speeds, drive(1, 2, speed_kmh, start_ms=0, from_y_m=60, noise_px=0.3, seed=speed_kmh), until_y_px=at_y_px)
    assert speeds.speed_kmh(1) == pytest.approx(speed_kmh, abs=2)


def test_a_box_that_jumps_for_a_frame_does_not_move_the_speed():
    points = drive(1, 2, 50, start_ms=0, from_y_m=40, to_y_m=10)
    ts_ms, track_id, class_id, x, y = points[8]
    points[8] = (ts_ms, track_id, class_id, x, y + 25)  # a merged box, 25 px too low
    speeds = TrackSpeeds(CALIBRATION)
    feed(speeds, points[:14])
    assert speeds.speed_kmh(1) == pytest.approx(50, abs=2)


def test_too_few_points_or_too_short_a_span_gives_none():
    speeds = TrackSpeeds(CALIBRATION)
    points = drive(1, 2, 50, start_ms=0)
    feed(speeds, points[:2])
    assert speeds.speed_kmh(1) is None  # 2 points
    feed(speeds, points[2:4])
    assert speeds.speed_kmh(1) is None  # 4 points over 300 ms
    feed(speeds, points[4:5])
    assert speeds.speed_kmh(1) == pytest.approx(50, abs=2)  # 5 points over 400 ms
    assert speeds.speed_kmh(99) is None  # a track never seen


def test_only_the_recent_window_counts():
    slow_then_fast = drive(1, 2, 20, start_ms=0, from_y_m=50, to_y_m=44)
    last_ms, *_ = slow_then_fast[-1]
    (_, y_m), = CALIBRATION.to_ground(np.array(slow_then_fast[-1][3:]).reshape(1, 2)).tolist()
    slow_then_fast += drive(1, 2, 80, start_ms=last_ms + 100, from_y_m=y_m - 80 / 36, to_y_m=10)
    speeds = TrackSpeeds(CALIBRATION)
    feed(speeds, slow_then_fast[:len(slow_then_fast) - 30])
    assert speeds.speed_kmh(1) == pytest.approx(80, abs=2)


def test_without_calibration_there_is_no_speed():
    speeds = TrackSpeeds(None)
    feed(speeds, drive(1, 2, 50, start_ms=0))
    assert speeds.speed_kmh(1) is None


def test_unconfirmed_tracks_and_points_above_the_horizon_are_ignored():
    speeds = TrackSpeeds(CALIBRATION)
    for frame in range(10):
        speeds.observe(frame * 100, np.array([-1, 4]), np.array([[640, 600 - 10 * frame], [640, 50]]))
    assert speeds.tracks == {}
