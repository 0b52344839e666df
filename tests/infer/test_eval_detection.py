"""The detection evaluation itself (load/eval_detection.py) on synthetic boxes whose figures are worked out by hand:
precision/recall per class, overall and class-agnostic, and COCOeval AP@0.5, with ignore boxes."""

import pytest

from load.eval_detection import Frame, precision_recall, score, seen, truth_frame

PERSON, CAR = 0, 2


def frame(key, truth, preds) -> Frame:
    """truth: [(class name, xyxy, ignore)], preds: [(class id, xyxy, score)]."""
    boxes = [{"class": c, "xyxy": xyxy, **({"ignore": True} if ignore else {})} for c, xyxy, ignore in truth]
    return truth_frame(key, boxes, ([p[1] for p in preds], [p[2] for p in preds], [p[0] for p in preds]))


PERFECT = frame("perfect", [("car", [0, 0, 100, 100], False), ("person", [200, 0, 260, 150], False)],
                [(CAR, [0, 0, 100, 100], 0.9), (PERSON, [200, 0, 260, 150], 0.8)])
SHIFTED = frame("shifted", [("car", [0, 0, 100, 100], False)], [(CAR, [50, 0, 150, 100], 0.7)])  # IoU 1/3
WRONG_CLASS = frame("wrong-class", [("car", [300, 300, 400, 400], False)], [(PERSON, [300, 300, 400, 400], 0.6)])
IGNORED = frame("ignored", [("car", [0, 0, 50, 50], True), ("car", [100, 100, 200, 200], False)],
                [(CAR, [0, 0, 50, 50], 0.99), (CAR, [100, 100, 200, 200], 0.95)])
ALL = [PERFECT, SHIFTED, WRONG_CLASS, IGNORED]


def pr(metrics, key):
    m = metrics[key]
    return m["tp"], m["fp"], m["fn"], m["precision"], m["recall"]


def test_perfect_detections_score_one():
    result = score([PERFECT])
    assert pr(result["pr"], "all") == (2, 0, 0, 1.0, 1.0)
    assert result["ap50"] == {"person": 1.0, "car": 1.0}
    assert result["map50"] == 1.0 and result["ap50_class_agnostic"] == 1.0


def test_precision_recall_by_hand():
    metrics = precision_recall(ALL)
    # class-aware: TP perfect car + person, ignored-frame car; FP shifted car, wrong-class person (the box on the
    # ignore region counts for nothing); FN shifted car, wrong-class car
    assert pr(metrics, "all") == (3, 2, 2, 0.6, 0.6)
    assert pr(metrics, "class_agnostic") == (4, 1, 1, 0.8, 0.8)  # the wrong-class box finds its car
    assert pr(metrics, "car") == (2, 1, 2, 0.667, 0.5)
    assert pr(metrics, "person") == (1, 1, 0, 0.5, 1.0)


def test_ap_by_hand():
    result = score(ALL)
    assert result["frames"] == 4 and result["truth_boxes"] == 5 and result["ignore_boxes"] == 1
    # car, by score: 0.99 on the ignore box (not counted), 0.95 TP, 0.9 TP, 0.7 FP; 4 cars → recall reaches 0.5 at
    # precision 1: 51 of COCO's 101 recall points (0, 0.01 … 0.50) at 1, the rest 0
    assert result["ap50"]["car"] == pytest.approx(51 / 101, abs=1e-4)
    assert result["ap50"]["person"] == 1.0  # its one person is the top-scored person box
    assert result["map50"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-4)
    # agnostic: 0.95 TP, 0.9 TP, 0.8 TP, 0.7 FP, 0.6 TP of 5 → precision 1 up to recall 0.6 (61 points), 0.8 up to
    # 0.8 (20 points)
    assert result["ap50_class_agnostic"] == pytest.approx((61 + 20 * 0.8) / 101, abs=1e-4)


def test_ignore_box_is_not_a_miss_and_no_detection_is_ap_zero():
    only_ignore = frame("only-ignore", [("car", [0, 0, 50, 50], True)], [(CAR, [0, 0, 50, 50], 0.9)])
    assert pr(score([only_ignore])["pr"], "all") == (0, 0, 0, None, None)
    missed = frame("missed", [("car", [0, 0, 50, 50], False)], [])
    result = score([missed])
    assert pr(result["pr"], "car") == (0, 0, 1, None, 0.0)
    assert result["ap50"] == {"person": None, "car": 0.0} and result["map50"] == 0.0


def test_low_threshold_detections_are_used_for_ap_only():
    # served at its threshold: nothing; at 0.01 the car is there → recall 0 but AP 1
    f = truth_frame("low", [{"class": "car", "xyxy": [0, 0, 50, 50]}], ([], [], []),
                    ([[0, 0, 50, 50]], [0.05], [CAR]))
    result = score([f])
    assert pr(result["pr"], "car") == (0, 0, 1, None, 0.0)
    assert result["ap50"]["car"] == 1.0


def test_held_out_rule():
    periods = [{"video": "car-detection.mp4", "start_s": 0.0, "end_s": 14.0}]
    assert seen(periods, "car-detection.mp4", 14.4)  # within the 1 s gap after the period
    assert not seen(periods, "car-detection.mp4", 15.2)
    assert not seen(periods, "one-by-one-person-detection.mp4", 3.0)
