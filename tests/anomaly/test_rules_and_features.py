"""Known-anomaly rules and scene features on synthetic tracks (pure logic)."""

import numpy as np

from vigil.features import FEATURES, FrameObs, scene_features, windowed_features
from jobs.anomaly.rules import RuleConfig, RuleEngine, zones_from_config

LANE = [{"name": "lane", "kind": "traffic", "polygon": [[0, 0], [768, 0], [768, 432], [0, 432]], "direction": [0, 1]}]
TABLE = [{"name": "table", "kind": "restricted", "polygon": [[300, 100], [500, 100], [500, 300], [300, 300]]}]


def frame(ts_ms, objects):
    """objects: list of (track_id, class_id, cx, cy)."""
    centres = np.array([[o[2], o[3]] for o in objects], dtype=float).reshape(-1, 2)
    return FrameObs(ts_ms, 768, 432, centres, np.array([o[1] for o in objects], dtype=np.int32),
                    np.array([o[0] for o in objects], dtype=np.int64))


def run(engine, frames):
    events = []
    for f in frames:
        events += engine.observe(f)
    return events


def test_stopped_vehicle_fires_once_after_the_configured_time():
    engine = RuleEngine("cam", zones_from_config(LANE), RuleConfig(stopped_seconds=5))
    moving = [frame(i * 200, [(1, 2, 300, 20 + 15 * i)]) for i in range(20)]  # drives down for 4 s
    parked = [frame(4000 + i * 200, [(1, 2, 300, 305 + (i % 2))]) for i in range(1, 40)]  # then stands for 8 s
    events = run(engine, moving + parked)
    assert [e["kind"] for e in events] == ["stopped_vehicle"]
    assert events[0]["track_ids"] == [1] and events[0]["zone"] == "lane"
    assert 8500 <= events[0]["window_end_ms"] <= 10_000, "fires about 5 s after the car stopped"


def test_moving_traffic_raises_nothing():
    engine = RuleEngine("cam", zones_from_config(LANE))
    cars = [frame(i * 200, [(1, 2, 200, 10 + 12 * i), (2, 2, 500, 5 + 10 * i)]) for i in range(35)]
    assert run(engine, cars) == []


def test_wrong_way_against_the_zone_direction():
    engine = RuleEngine("cam", zones_from_config(LANE))
    right_way = [frame(i * 200, [(1, 2, 200, 20 + 12 * i)]) for i in range(20)]
    wrong_way = [frame(4000 + i * 200, [(2, 2, 500, 400 - 12 * i)]) for i in range(20)]
    events = run(engine, right_way + wrong_way)
    assert [(e["kind"], e["track_ids"]) for e in events] == [("wrong_way", [2])]


def test_loitering_and_crowding():
    engine = RuleEngine("cam", zones_from_config(TABLE), RuleConfig(loiter_seconds=10, crowd_persons=4))
    lingering = [frame(i * 500, [(7, 0, 400, 200 + (i % 3))]) for i in range(30)]
    crowd = [frame(20_000 + i * 500, [(10 + k, 0, 100 + 60 * k, 380) for k in range(5)]) for i in range(6)]
    kinds = [e["kind"] for e in run(engine, lingering + crowd)]
    assert kinds.count("loitering") == 1 and kinds.count("crowding") == 1


def test_features_describe_the_scene():
    frames = [frame(i * 200, [(1, 2, 100 + 25 * i, 50)]) for i in range(10)]
    vector = scene_features(frames)
    named = dict(zip(FEATURES, vector))
    assert named["count:car"] == 1.0 and named["count:person"] == 0.0
    assert named["heading:E"] == 1.0, "moving right"
    assert named["speed:60-150"] == 1.0, "125 px/s"
    windows = windowed_features(frames, 200)
    assert [start for start, _, _ in windows] == [1000, 1200, 1400, 1600, 1800], "cold windows are left out"


def test_object_left_behind_by_a_person_who_walks_away():
    engine = RuleEngine("cam", zones_from_config(TABLE), RuleConfig(left_seconds=8, loiter_seconds=60))
    walk_in = [frame(i * 200, [(1, 0, 100 + 15 * i, 300)]) for i in range(15)]  # reaches x=310
    drop = [frame(3000 + i * 200, [(1, 0, 310 + 20 * i, 300), (2, 0, 320, 330)]) for i in range(15)]  # leaves, bag stays
    alone = [frame(6000 + i * 200, [(2, 0, 320 + (i % 2), 330)]) for i in range(40)]
    events = run(engine, walk_in + drop + alone)
    assert [(e["kind"], e["track_ids"]) for e in events] == [("object_left", [2, 1])]


def test_a_person_standing_alone_is_not_a_left_object():
    engine = RuleEngine("cam", zones_from_config(TABLE), RuleConfig(left_seconds=8, loiter_seconds=60))
    standing = [frame(i * 200, [(5, 0, 400 + (i % 2), 200)]) for i in range(80)]
    assert run(engine, standing) == []


def test_a_track_that_restarts_in_place_is_not_a_left_object():
    """The tracker losing a standing person and starting a new id on the same spot is not an object split off."""
    engine = RuleEngine("cam", zones_from_config(TABLE), RuleConfig(left_seconds=8, loiter_seconds=60))
    first = [frame(i * 200, [(1, 0, 400, 200)]) for i in range(10)]
    second = [frame(2000 + i * 200, [(2, 0, 401, 200)]) for i in range(70)]
    assert run(engine, first + second) == []
