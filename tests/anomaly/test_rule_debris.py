"""Debris: a static region (ingest's static-object cue) in a traffic lane that no vehicle or person explains is one
event after the set time; a stopped car, someone standing, a crawling car, a region outside the lanes or too small
are not; the detector's "car" boxed on the object is no stopped vehicle."""

import numpy as np
import pytest

from jobs.anomaly.rules import RuleEngine, RuleSettingsError
from vigil.detections import DetectionFrame, Detections, StaticRegion, VideoQuality
from vigil.zones import Zone
from tests.flink import ValueState

LANES = [Zone(name="lane", kind="traffic", polygon=[(0, 0), (500, 0), (500, 432), (0, 432)], direction=(0, 1)),
         Zone(name="verge", kind="pedestrian", polygon=[(500, 0), (768, 0), (768, 432), (500, 432)])]
OBJECT = (100.0, 200.0, 200.0, 250.0)  # where the object lies (frame px)
STATIC_AFTER_MS = 2000  # ingest reports a region once it differed this long


def scene(ts_ms, boxes=(), regions=()):
    """One 5 fps frame: boxes as (track, class, (x1, y1, x2, y2)); regions as (xyxy, since_ms): a static region
    there since `since_ms`, reported once it is STATIC_AFTER_MS old."""
    detections = Detections(np.array([b[2] for b in boxes], dtype=float).reshape(-1, 4), np.full(len(boxes), 0.9),
                            [b[1] for b in boxes], [b[0] for b in boxes])
    static = tuple(StaticRegion(*xyxy, area_px=(xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]), static_ms=ts_ms - since)
                   for xyxy, since in regions if ts_ms - since >= STATIC_AFTER_MS)
    return DetectionFrame("cam", ts_ms, 768, 432, detections, VideoQuality(180.0, 11.0, static_regions=static))


def run(engine, frames):
    return [e for f in frames for e in engine.observe(f)]


def shifted(box, dy):
    return (box[0], box[1] + dy, box[2], box[3] + dy)


def test_an_object_that_appears_and_stays_is_one_debris_event_after_the_set_time():
    frames = [scene(i * 200, regions=[(OBJECT, 4000)] if i * 200 >= 4000 else []) for i in range(150)]
    events = run(RuleEngine("cam", LANES), frames)
    assert [(e["kind"], e["zone"], e["track_ids"]) for e in events] == [("debris", "lane", [])]
    assert events[0]["window_start_ms"] == 4000 and events[0]["window_end_ms"] == 10_000
    assert events[0]["score"] == 6.0 and events[0]["threshold"] == 6.0
    assert events[0]["event_id"] == "cam:debris:lane:4000"


def test_a_stopped_car_is_no_debris_and_stays_the_stopped_vehicle_rules():
    """A car drives in and stops at 4 s; its region (from ingest) is covered by the track that drove there."""
    frames = []
    for i in range(100):
        ts = i * 200
        box = shifted(OBJECT, min(0, ts - 4000) * 0.1)  # down the lane at 100 px/s until 4 s, then stopped
        frames.append(scene(ts, [(1, 2, shifted(box, -200))], [(shifted(OBJECT, -200), 4000)]))
    assert [e["kind"] for e in run(RuleEngine("cam", LANES), frames)] == ["stopped_vehicle"]


def test_the_detectors_car_on_the_object_is_debris_not_a_stopped_vehicle():
    """The car camera's detector boxes a fallen table top as a car that never moves: one event, debris."""
    frames = [scene(i * 200, [(7, 2, (90.0, 180.0, 215.0, 262.0))] if i * 200 >= 4800 else [],
                    [(OBJECT, 4000)] if i * 200 >= 4000 else []) for i in range(150)]
    events = run(RuleEngine("cam", LANES), frames)
    assert [e["kind"] for e in events] == ["debris"]


def test_someone_standing_in_the_lane_is_no_debris():
    frames = [scene(i * 200, [(3, 0, OBJECT)], [(OBJECT, 0)]) for i in range(100)]
    assert "debris" not in [e["kind"] for e in run(RuleEngine("cam", LANES), frames)]


def test_a_crawling_car_whose_track_was_not_there_when_its_region_formed_is_no_debris():
    """A region that moves down the lane (a car crawling at 10 px/s, tracked only from 3 s on) is no object that
    stays, even once the track has gone and the region's tail lingers."""
    frames = [scene(i * 200, [(4, 2, shifted(OBJECT, i * 2))] if 15 <= i < 80 else [],
                    [(shifted(OBJECT, i * 2), 0)]) for i in range(100)]
    assert "debris" not in [e["kind"] for e in run(RuleEngine("cam", LANES), frames)]


def test_regions_outside_the_lanes_or_too_small_are_ignored():
    verge = (600.0, 200.0, 700.0, 250.0)
    speck = (100.0, 100.0, 110.0, 110.0)  # 100 px² < min_area_px
    frames = [scene(i * 200, regions=[(verge, 0), (speck, 0)]) for i in range(100)]
    assert run(RuleEngine("cam", LANES), frames) == []


def test_a_car_passing_over_it_delays_it_and_it_fires_once():
    frames = []
    for i in range(300):
        ts = i * 200
        over = 9000 <= ts < 10_400  # a car driving by covers the object from 9.25 s to 10.1 s: when it would fire
        boxes = [(5, 2, (80.0, -100.0 + (ts - 9000) * 0.3, 220.0, 150.0 + (ts - 9000) * 0.3))] if over else []
        frames.append(scene(ts, boxes, [(OBJECT, 4000)] if ts >= 4000 else []))
    events = run(RuleEngine("cam", LANES), frames)
    assert [e["kind"] for e in events] == ["debris"]
    assert events[0]["window_end_ms"] == 10_200, "once the car has passed"


def test_settings_per_zone_and_their_validation():
    quick = [LANES[0].model_copy(update={"rules": {"debris": {"seconds": 3}}}), LANES[1]]
    frames = [scene(i * 200, regions=[(OBJECT, 0)]) for i in range(60)]
    assert [e["window_end_ms"] for e in run(RuleEngine("cam", quick), frames)] == [3000]
    off = [LANES[0].model_copy(update={"rules": {"debris": {"enabled": False}}}), LANES[1]]
    assert run(RuleEngine("cam", off), frames) == []
    with pytest.raises(RuleSettingsError, match="rule 'debris': seconds: Input should be greater than 0"):
        RuleEngine("cam", LANES, {"debris": {"seconds": 0}})




def _incidents_of(frames):
    """The incident revisions the job's rules and incident stages make of one camera's frames."""
    from jobs.anomaly.incidents import IncidentBook
    from jobs.anomaly.job import Incidents, Rules

    rules = Rules({"cam": LANES}, {})
    rules.rule_state, rules.presence, rules.engines = ValueState(), ValueState(), {"cam": RuleEngine("cam", LANES)}
    incidents = Incidents(None, "")
    incidents.book, incidents.settings = ValueState(), IncidentBook().settings
    incidents.uris = lambda camera_id, incident_id: (f"file:///{incident_id}.jpg", f"file:///{incident_id}.mp4")
    return [r for f in frames for out in rules.process_element(("cam", f), None)
            for r in incidents.process_element(out, None)]


def test_the_debris_incident_stays_open_while_the_object_stays_and_clears_once_it_is_taken_away():
    """The object lies in the lane from 4 s to 100 s (far past the incident stage's 30 s quiet clearing); its
    incident opens at 10 s, is still open at 100 s, and clears clear_after_s (10 s) after it was last reported."""
    frames = [scene(i * 200, regions=[(OBJECT, 4000)] if 4000 <= i * 200 < 100_000 else []) for i in range(650)]
    revisions = _incidents_of(frames)
    assert [(r["kind"], r["state"]) for r in revisions] == [("debris", "open"), ("debris", "cleared")], revisions
    cleared_ms = revisions[-1]["cleared_ms"]
    assert 100_000 + 10_000 - 1000 <= cleared_ms <= 100_000 + 10_000 + 1000, cleared_ms
    assert revisions[-1]["severity"] == "high", "there for over a minute"


def test_a_debris_incident_whose_object_is_gone_at_once_clears_after_the_quiet_time():
    """Reported only until it fired (a ghost, a puddle drying): nothing holds the incident; quiet_clear_s (30 s)."""
    frames = [scene(i * 200, regions=[(OBJECT, 4000)] if 4000 <= i * 200 <= 10_000 else []) for i in range(300)]
    revisions = _incidents_of(frames)
    assert [r["state"] for r in revisions] == ["open", "cleared"]
    assert 40_000 - 1000 <= revisions[-1]["cleared_ms"] <= 40_000 + 1000
