"""The tracker on synthetic motion: stable ids, no swaps when objects cross, weak detections keep tracks alive,
tracks end after max misses."""

import numpy as np

from vigil.detections import Detections
from vigil.tracker import ByteTracker, TrackerConfig


def _dets(boxes, scores=None, classes=None):
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return Detections(boxes, scores if scores is not None else [0.9] * len(boxes), classes if classes is not None else [2] * len(boxes))


def test_one_moving_object_keeps_one_id():
    tracker = ByteTracker()
    ids = []
    for t in range(30):
        x = 10 + 25 * t  # fast: 25 px per frame on a 100 px box
        ids.append(tracker.update(_dets([[x, 50, x + 100, 110]])).tracker_id[0])
    assert ids[0] == -1, "unconfirmed on its first frame"
    assert len(set(ids[1:])) == 1 and ids[1] >= 1


def test_two_objects_crossing_keep_their_ids():
    tracker = ByteTracker()
    history = []
    for t in range(40):
        a = [10 + 15 * t, 100, 70 + 15 * t, 160]  # left to right
        b = [600 - 15 * t, 110, 660 - 15 * t, 170]  # right to left, crossing around t=20
        out = tracker.update(_dets([a, b]))
        history.append(out.tracker_id.tolist())
    first, last = history[2], history[-1]
    assert first[0] != first[1] and first == last, "identities survive the crossing"


def test_low_score_detection_extends_a_track_but_does_not_start_one():
    tracker = ByteTracker(TrackerConfig(high_score=0.5, low_score=0.1))
    for t in range(3):
        out = tracker.update(_dets([[10 + 5 * t, 10, 60 + 5 * t, 60]]))
    track_id = out.tracker_id[0]
    weak = tracker.update(_dets([[25, 10, 75, 60], [400, 400, 450, 450], [600, 10, 650, 60]], scores=[0.2, 0.2, 0.4]))
    assert weak.tracker_id.tolist() == [track_id, -1], "the weak box that extends the track is reported with its id"
    assert weak.xyxy[:, 0].tolist() == [25, 600], "the untracked weak box is not reported; the 0.4 one is"
    assert len(tracker.tracks) == 1, "a weak detection alone never starts a track"


def test_report_score_none_keeps_every_detection_aligned():
    tracker = ByteTracker(TrackerConfig(report_score=None))
    out = tracker.update(_dets([[10, 10, 60, 60], [400, 400, 450, 450]], scores=[0.9, 0.05]))
    assert out.tracker_id.tolist() == [-1, -1] and len(out) == 2


def test_weak_boxes_keep_a_fading_object_on_one_track():
    """An object whose score sinks under the report threshold (a person turning away, a car into shade) stays one
    track as long as the detector is asked for weak boxes; with them cut at the report score it is lost and comes
    back under a new id."""
    def run(min_score):
        tracker, ids = ByteTracker(TrackerConfig(max_misses=2)), []
        for t in range(20):
            score = 0.8 if t < 5 or t >= 15 else 0.15  # weak for 10 frames in the middle
            boxes = [[10 + 4 * t, 10, 60 + 4 * t, 60]] if score >= min_score else []
            out = tracker.update(_dets(boxes, scores=[score] * len(boxes)))
            ids += [int(i) for i in out.tracker_id if i >= 0]
        return ids

    assert len(set(run(0.1))) == 1 and len(run(0.1)) == 19, "one id on every frame after confirmation"
    assert len(set(run(0.3))) == 2, "cut at 0.3: the track ends in the weak stretch and a new one starts"


def test_track_ends_after_max_misses_and_new_object_gets_new_id():
    tracker = ByteTracker(TrackerConfig(max_misses=3))
    for _ in range(3):
        first_id = tracker.update(_dets([[10, 10, 60, 60]])).tracker_id[0]
    for _ in range(4):
        tracker.update(Detections.empty())
    assert not tracker.tracks
    for _ in range(2):
        second_id = tracker.update(_dets([[10, 10, 60, 60]])).tracker_id[0]
    assert second_id > first_id


def test_detections_reject_inconsistent_arrays():
    import pytest

    with pytest.raises(ValueError, match="class_id has 1 entries for 2 boxes"):
        Detections(np.zeros((2, 4)), [0.5, 0.5], [1])
