"""Pedestrian on the carriageway: a person in a traffic zone for a moment; people elsewhere and vehicles are not."""

from jobs.anomaly.rules import RuleEngine
from jobs.anomaly.synthetic import LANE, frame
from vigil.zones import Zone

SIDEWALK_AND_ROAD = [Zone(name="sidewalk", kind="pedestrian", polygon=[(0, 0), (200, 0), (200, 432), (0, 432)]),
                     Zone(name="road", kind="traffic", polygon=[(200, 0), (768, 0), (768, 432), (200, 432)],
                          direction=(0, 1))]


def run(engine, frames):
    return [e for f in frames for e in engine.observe(f)]


def test_a_person_walking_onto_the_road_is_reported_once():
    engine = RuleEngine("cam", SIDEWALK_AND_ROAD)
    # walks along the sidewalk for 4 s, then steps onto the road and crosses it slowly
    walk = [frame(i * 200, [(5, 0, 100, 50 + 5 * i)]) for i in range(20)]
    walk += [frame(4000 + i * 200, [(5, 0, 210 + 8 * i, 150)]) for i in range(30)]
    events = run(engine, walk)
    assert [(e["kind"], e["track_ids"], e["zone"]) for e in events] == [("pedestrian", [5], "road")]
    # timed from stepping onto the road (4 s), not from when the track was first seen
    assert events[0]["window_start_ms"] == 4000 and 5400 <= events[0]["window_end_ms"] <= 5800


def test_people_on_the_sidewalk_and_cars_on_the_road_raise_nothing():
    engine = RuleEngine("cam", SIDEWALK_AND_ROAD)
    frames = [frame(i * 200, [(1, 0, 100, 100 + 2 * i), (2, 2, 400, 10 + 12 * i)]) for i in range(30)]
    assert [e["kind"] for e in run(engine, frames)] == []


def test_a_person_walking_up_a_lane_is_a_pedestrian_not_a_wrong_way_vehicle():
    engine = RuleEngine("cam", LANE)
    frames = [frame(i * 200, [(3, 0, 300, 400 - 10 * i)]) for i in range(25)]
    assert [e["kind"] for e in run(engine, frames)] == ["pedestrian"]
