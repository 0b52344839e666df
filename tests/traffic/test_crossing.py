"""Counting tracks on a count line: once per track, never from jitter, only on the segment, with the right sign."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.traffic.crossing import LineCounter
from vigil.geometry import CountLine

# a horizontal line from x=100 to x=500 at y=400; down the image (towards the camera) is positive
LINE = CountLine(name="stop", lane="north", start=(100, 400), end=(500, 400), positive=(0, 1))
CAR = 2


def run(counter: LineCounter, tracks: dict[int, list[tuple[float, float]]], frame_ms: int = 100,
        class_id: int = CAR) -> list:
    """Feed each track's points, one per frame (all tracks in the same frames) → every crossing."""
    crossings = []
    for frame in range(max(len(points) for points in tracks.values())):
        present = [(track_id, points[frame]) for track_id, points in tracks.items() if frame < len(points)]
        crossings += counter.observe(frame * frame_ms, np.array([t for t, _ in present]),
                                     np.full(len(present), class_id), np.array([p for _, p in present], dtype=float))
    return crossings


def straight(x: float, y_from: float, y_to: float, steps: int) -> list[tuple[float, float]]:
    return [(x, y) for y in np.linspace(y_from, y_to, steps)]


def test_a_track_moving_down_counts_plus_one_at_the_interpolated_time():
    # 390 at 100 ms, 410 at 200 ms: through the line halfway, at 150 ms
    crossings = run(LineCounter(LINE), {7: [(300, 380), (300, 390), (300, 410), (300, 420)]})
    assert len(crossings) == 1
    crossing = crossings[0]
    assert (crossing.track_id, crossing.class_id, crossing.direction, crossing.line) == (7, CAR, 1, "stop")
    assert crossing.ts_ms == pytest.approx(150)
    assert (crossing.x, crossing.y) == pytest.approx((300, 400))


def test_a_track_moving_up_counts_minus_one():
    crossings = run(LineCounter(LINE), {3: straight(250, 480, 320, 9)})
    assert [(c.track_id, c.direction) for c in crossings] == [(3, -1)]


def test_flicker_inside_the_band_never_counts():
    rng = np.random.default_rng(1)
    # a car rolls up to the line and stands on it for 30 s, its box bottom wobbling by up to 5 px (< 6 px band)
    approach = straight(300, 340, 398, 10)
    standing = [(300 + rng.uniform(-3, 3), 400 + rng.uniform(-5, 5)) for _ in range(300)]
    wobbling_only = [(200 + rng.uniform(-3, 3), 400 + rng.uniform(-5.9, 5.9)) for _ in range(300)]
    assert run(LineCounter(LINE), {1: approach + standing, 2: wobbling_only}) == []


def test_jitter_around_the_line_is_timed_at_the_last_pass():
    points = [(300, 380), (300, 398), (300, 402), (300, 397), (300, 403), (300, 420)]
    crossings = run(LineCounter(LINE), {1: points})
    assert len(crossings) == 1
    assert crossings[0].ts_ms == pytest.approx(300 + 100 * 3 / 6)  # between 397 (300 ms) and 403 (400 ms)


def test_an_unconfirmed_track_is_ignored():
    assert run(LineCounter(LINE), {-1: straight(300, 300, 500, 20)}) == []


@pytest.mark.parametrize("first_direction, ys", [
    (1, [350, 380, 420, 450, 420, 380, 350, 380, 420, 450]),  # down, rolls back up, down again
    (-1, [450, 420, 380, 350, 380, 420, 450, 420, 380, 350]),  # up, back down, up again
])
def test_stop_and_go_back_and_forth_counts_once_in_the_first_direction(first_direction, ys):
    crossings = run(LineCounter(LINE), {5: [(300, y) for y in ys]})
    assert [(c.track_id, c.direction) for c in crossings] == [(5, first_direction)]


def test_two_tracks_crossing_in_the_same_frame_both_count():
    counter = LineCounter(LINE)
    tracks = {1: straight(200, 380, 420, 5), 2: straight(400, 381, 421, 5)}
    for frame in range(3):  # neither is past the band yet
        assert counter.observe(frame * 100, np.array([1, 2]), np.array([CAR, CAR]),
                               np.array([tracks[1][frame], tracks[2][frame]])) == []
    crossings = counter.observe(300, np.array([1, 2]), np.array([CAR, CAR]), np.array([tracks[1][3], tracks[2][3]]))
    assert [(c.track_id, c.direction) for c in crossings] == [(1, 1), (2, 1)]
    # track 1 was exactly on the line at 200 ms; track 2 went from 391 to 401 px between 100 and 200 ms
    assert [c.ts_ms for c in crossings] == pytest.approx([200, 190])


@pytest.mark.parametrize("x", [40, 530, 560])
def test_a_track_passing_beside_the_segment_does_not_count(x):
    assert run(LineCounter(LINE), {1: straight(x, 300, 500, 21)}) == []


def test_a_track_crossing_just_inside_the_end_margin_counts():
    assert len(run(LineCounter(LINE), {1: straight(502, 300, 500, 21)})) == 1


def test_a_diagonal_line_and_the_class_seen_most_often():
    line = CountLine(name="diag", lane="north", start=(0, 0), end=(100, 100), positive=(1, -1))
    counter = LineCounter(line)
    points = [(30, 70), (40, 60), (60, 40), (70, 30)]  # up-right: the positive side
    crossings = []
    for frame, ((x, y), class_id) in enumerate(zip(points, [7, 2, 7, 7])):
        crossings += counter.observe(frame * 100, np.array([9]), np.array([class_id]), np.array([[x, y]]))
    assert [(c.direction, c.class_id) for c in crossings] == [(1, 7)]


def test_forgotten_tracks_are_dropped():
    counter = LineCounter(LINE)
    run(counter, {1: straight(300, 300, 320, 3)})
    counter.forget(unseen_since_ms=1_000)
    assert counter.tracks == {}
