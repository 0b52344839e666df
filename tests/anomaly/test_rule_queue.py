"""Queue: at least two vehicles in one lane, each slow (or stopped) for the set time, is one event per lane episode;
the slow and stopped vehicles in it are the queue's (one incident), fast traffic and a single slow car are no queue."""

import pytest

from jobs.anomaly.rules import RuleEngine, RuleSettingsError
from jobs.anomaly.synthetic import LANE, frame, normal_traffic
from vigil.zones import Zone

LANES = [Zone(name="left", kind="traffic", polygon=[(0, 0), (384, 0), (384, 432), (0, 432)], direction=(0, 1)),
         Zone(name="right", kind="traffic", polygon=[(384, 0), (768, 0), (768, 432), (384, 432)], direction=(0, 1))]


def run(engine, frames):
    return [e for f in frames for e in engine.observe(f)]


def crawl(track, x, y0, speed, start_s, end_s, entry_speed=0.0):
    """(track, car, x, y) of a car that drove in (`entry_speed` px/s for its first second, or it crawls from the
    start) and crawls at `speed` px/s, per 200 ms frame from start_s to end_s; the lane ends at y = 432."""
    points = {}
    for i in range(int(start_s * 5), int(end_s * 5)):
        t = i / 5 - start_s
        y = y0 + entry_speed * min(t, 1.0) + speed * max(0.0, t - (1.0 if entry_speed else 0.0))
        points[i] = (track, 2, x, y)
    return points


def frames_of(*cars, seconds):
    return [frame(i * 200, [car[i] for car in cars if i in car]) for i in range(int(seconds * 5))]


def test_two_cars_crawling_in_a_lane_are_one_queue_and_neither_is_a_slow_vehicle():
    engine = RuleEngine("cam", LANE)
    events = run(engine, frames_of(crawl(1, 200, 200, 10, 0, 15, entry_speed=40),
                                   crawl(2, 200, 40, 10, 0, 15, entry_speed=40), seconds=15))
    assert [(e["kind"], e["track_ids"], e["zone"]) for e in events] == [("queue", [1, 2], "lane")]
    assert events[0]["score"] == 2 and events[0]["threshold"] == 2
    assert 4000 <= events[0]["window_end_ms"] <= 5200
    assert events[0]["event_id"] == f"cam:queue:lane:{events[0]['window_end_ms']}"


def test_fast_traffic_is_no_queue():
    assert [e for e in run(RuleEngine("cam", LANE), normal_traffic(0, 60, 1)) if e["kind"] == "queue"] == []


def test_one_slow_car_is_a_slow_vehicle_not_a_queue():
    events = run(RuleEngine("cam", LANE), frames_of(crawl(1, 200, 40, 20, 0, 12, entry_speed=40), seconds=12))
    assert [e["kind"] for e in events] == ["slow_vehicle"]


def test_one_slow_car_in_each_lane_is_no_queue():
    events = run(RuleEngine("cam", LANES), frames_of(crawl(1, 200, 40, 20, 0, 12, entry_speed=40),
                                                     crawl(2, 600, 40, 20, 0, 12, entry_speed=40), seconds=12))
    assert sorted((e["kind"], e["zone"]) for e in events) == [("slow_vehicle", "left"), ("slow_vehicle", "right")]


def test_a_stopped_car_with_a_crawling_one_behind_it_is_a_queue_not_a_stopped_vehicle():
    engine = RuleEngine("cam", LANE)
    events = run(engine, frames_of(crawl(1, 200, 300, 0, 0, 20, entry_speed=40),
                                   crawl(2, 200, 40, 10, 0, 20, entry_speed=40), seconds=20))
    assert [e["kind"] for e in events] == ["queue"]


def test_a_forming_queue_holds_the_first_cars_slow_event_back():
    """The first car crawls from 0 s (slow_vehicle due at 4 s); the second joins at 2 s: by 4 s the queue is forming,
    so the first car's event waits and the queue's comes instead."""
    engine = RuleEngine("cam", LANE)
    events = run(engine, frames_of(crawl(1, 200, 200, 20, 0, 10), crawl(2, 200, 40, 20, 2, 10), seconds=10))
    assert [(e["kind"], e["track_ids"]) for e in events] == [("queue", [1, 2])]


def test_a_queue_that_never_forms_lets_the_slow_vehicle_through():
    """A second slow car shows up for 2 s only: the first car's slow event waits while a queue may be forming, then
    comes."""
    engine = RuleEngine("cam", LANE)
    events = run(engine, frames_of(crawl(1, 200, 150, 20, 0, 12), crawl(2, 200, 40, 20, 2.5, 4.5), seconds=12))
    assert [(e["kind"], e["track_ids"]) for e in events] == [("slow_vehicle", [1])]
    assert events[0]["window_end_ms"] >= 4400


def test_a_box_that_never_moved_is_no_car_in_a_queue():
    """The car camera's detector boxes a fallen object as a car that stays where it appeared: with one crawling car
    beside it, that is no queue (and the object is the debris rule's)."""
    events = run(RuleEngine("cam", LANE), frames_of(crawl(1, 200, 300, 0, 0, 12), crawl(2, 200, 40, 20, 0, 12,
                                                                                         entry_speed=40), seconds=12))
    kinds = [(e["kind"], e["track_ids"]) for e in events]
    assert ("slow_vehicle", [2]) in kinds and "queue" not in [k for k, _ in kinds], "nor does it hold the car back"


def test_a_car_just_entering_at_a_crawl_holds_the_slow_event_back_before_it_shows_it_drove_in():
    """The follower enters at 6 px/s: 20 px (ARRIVED_PX) only after 3.3 s, when the leader's slow event is due."""
    engine = RuleEngine("cam", LANE)
    events = run(engine, frames_of(crawl(1, 200, 200, 20, 0, 12), crawl(2, 200, 40, 6, 2, 12), seconds=12))
    assert [(e["kind"], e["track_ids"]) for e in events] == [("queue", [1, 2])]


def test_once_per_episode_and_again_after_the_lane_cleared():
    engine = RuleEngine("cam", LANE, {"queue": {"clear_seconds": 5}})
    first = frames_of(crawl(1, 200, 200, 10, 0, 10, entry_speed=40), crawl(2, 200, 40, 10, 0, 10, entry_speed=40),
                      seconds=10)
    gap = [frame(10_000 + i * 200, []) for i in range(10)]  # 2 s without a queue: the episode goes on
    again = [frame(12_000 + f.ts_ms, [(k + 10, c, x, y) for k, c, x, y in zip(
        f.detections.tracker_id, f.detections.class_id, *f.detections.center.T)]) for f in first]
    later = [frame(40_000 + f.ts_ms, [(k + 20, c, x, y) for k, c, x, y in zip(
        f.detections.tracker_id, f.detections.class_id, *f.detections.center.T)]) for f in first]
    events = [e for e in run(engine, first + gap + again + later) if e["kind"] == "queue"]
    assert [e["track_ids"] for e in events] == [[1, 2], [21, 22]], "one episode until the lane cleared for 5 s"


def test_settings_per_zone_and_their_validation():
    three = [LANES[0].model_copy(update={"rules": {"queue": {"min_vehicles": 3}}}), LANES[1]]
    cars = [crawl(1, 200, 200, 10, 0, 12, entry_speed=40), crawl(2, 200, 40, 10, 0, 12, entry_speed=40),
            crawl(3, 600, 200, 10, 0, 12, entry_speed=40), crawl(4, 600, 40, 10, 0, 12, entry_speed=40)]
    events = run(RuleEngine("cam", three), frames_of(*cars, seconds=12))
    assert [(e["kind"], e["zone"]) for e in events if e["kind"] == "queue"] == [("queue", "right")]
    with pytest.raises(RuleSettingsError, match="rule 'queue': min_vehicles: Input should be greater than or equal "
                                                "to 2"):
        RuleEngine("cam", LANE, {"queue": {"min_vehicles": 1}})
    with pytest.raises(RuleSettingsError, match="rule 'queue': speed: unknown setting"):
        RuleEngine("cam", LANE, {"queue": {"speed": 10}})
