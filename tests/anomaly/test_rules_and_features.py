"""Known-anomaly rules and scene features on synthetic tracks (pure logic)."""

import pickle

import numpy as np

from jobs.anomaly.rules import RuleEngine, RuleState
from jobs.anomaly.synthetic import LANE, as_detection_batch, frame
from vigil.avro_codec import AvroCodec
from vigil.detections import DetectionFrame
from vigil.features import FEATURES, scene_features, windowed_features
from vigil.zones import Zone

TABLE = [Zone(name="table", kind="restricted", polygon=[(300, 100), (500, 100), (500, 300), (300, 300)])]


def run(engine, frames):
    events = []
    for f in frames:
        events += engine.observe(f)
    return events


def test_stopped_vehicle_fires_once_after_the_configured_time():
    engine = RuleEngine("cam", LANE, {"stopped_vehicle": {"seconds": 5}})
    moving = [frame(i * 200, [(1, 2, 300, 20 + 15 * i)]) for i in range(20)]  # drives down for 4 s
    parked = [frame(4000 + i * 200, [(1, 2, 300, 305 + (i % 2))]) for i in range(1, 40)]  # then stands for 8 s
    events = run(engine, moving + parked)
    assert [e["kind"] for e in events] == ["stopped_vehicle"]
    assert events[0]["track_ids"] == [1] and events[0]["zone"] == "lane"
    assert events[0]["event_id"] == "cam:stopped_vehicle:1"
    assert 8500 <= events[0]["window_end_ms"] <= 10_000, "fires about 5 s after the car stopped"


def test_moving_traffic_raises_nothing():
    engine = RuleEngine("cam", LANE)
    cars = [frame(i * 200, [(1, 2, 200, 10 + 12 * i), (2, 2, 500, 5 + 10 * i)]) for i in range(35)]
    assert run(engine, cars) == []


def test_wrong_way_against_the_zone_direction():
    engine = RuleEngine("cam", LANE)
    right_way = [frame(i * 200, [(1, 2, 200, 20 + 12 * i)]) for i in range(20)]
    wrong_way = [frame(4000 + i * 200, [(2, 2, 500, 400 - 12 * i)]) for i in range(20)]
    events = run(engine, right_way + wrong_way)
    assert [(e["kind"], e["track_ids"]) for e in events] == [("wrong_way", [2])]


def test_without_zones_the_whole_image_is_a_traffic_zone():
    engine = RuleEngine("cam", [], {"stopped_vehicle": {"seconds": 3}})
    parked = [frame(i * 200, [(1, 2, 300, 200)]) for i in range(25)]
    events = run(engine, parked)
    assert [(e["kind"], e["zone"]) for e in events] == [("stopped_vehicle", "image")]


def test_loitering_and_crowding():
    engine = RuleEngine("cam", TABLE, {"loitering": {"seconds": 10}, "crowding": {"persons": 4}})
    lingering = [frame(i * 500, [(7, 0, 400, 200 + (i % 3))]) for i in range(30)]
    crowd = [frame(20_000 + i * 500, [(10 + k, 0, 100 + 60 * k, 380) for k in range(5)]) for i in range(6)]
    events = run(engine, lingering + crowd)
    kinds = [e["kind"] for e in events]
    assert kinds.count("loitering") == 1 and kinds.count("crowding") == 1
    crowding = next(e for e in events if e["kind"] == "crowding")
    assert crowding["event_id"] == f"cam:crowding:{crowding['window_end_ms'] // 30_000}" and crowding["zone"] is None


def test_features_describe_the_scene():
    frames = [frame(i * 200, [(1, 2, 100 + 25 * i, 50)]) for i in range(10)]
    vector = scene_features(frames)
    named = dict(zip(FEATURES, vector))
    assert named["count:car"] == 1.0 and named["count:person"] == 0.0
    assert named["heading:E"] == 1.0, "moving right"
    assert named["speed:60-150"] == 1.0, "125 px/s"
    windows = windowed_features(frames, 200)
    assert [start for start, _, _ in windows] == [1000, 1200, 1400, 1600, 1800], "cold windows are left out"


def test_a_frame_from_its_detection_batch_record():
    record = AvroCodec().decode(as_detection_batch(frame(1234, [(5, 2, 100.3, 50.7), (-1, 0, 10, 20)]), "cam-r"))
    decoded = DetectionFrame.from_record(record)
    assert (decoded.camera_id, decoded.ts_ms, decoded.width, decoded.height) == ("cam-r", 1234, 768, 432)
    assert decoded.detections.tracker_id.tolist() == [5, -1] and decoded.detections.class_id.tolist() == [2, 0]
    assert decoded.detections.center.dtype == np.float32
    np.testing.assert_allclose(decoded.detections.center, [[100.3, 50.7], [10, 20]], atol=1e-4)
    np.testing.assert_allclose(decoded.detections.get_anchors_coordinates("BOTTOM_CENTER"), [[100.3, 65.7], [10, 35]],
                               atol=1e-4)


def test_object_left_behind_by_a_person_who_walks_away():
    engine = RuleEngine("cam", TABLE, {"object_left": {"seconds": 8}, "loitering": {"seconds": 60}})
    walk_in = [frame(i * 200, [(1, 0, 100 + 15 * i, 300)]) for i in range(15)]  # reaches x=310
    drop = [frame(3000 + i * 200, [(1, 0, 310 + 20 * i, 300), (2, 0, 320, 330)]) for i in range(15)]  # leaves, bag stays
    alone = [frame(6000 + i * 200, [(2, 0, 320 + (i % 2), 330)]) for i in range(40)]
    events = run(engine, walk_in + drop + alone)
    assert [(e["kind"], e["track_ids"]) for e in events] == [("object_left", [2, 1])]


def test_a_person_standing_alone_is_not_a_left_object():
    engine = RuleEngine("cam", TABLE, {"object_left": {"seconds": 8}, "loitering": {"seconds": 60}})
    standing = [frame(i * 200, [(5, 0, 400 + (i % 2), 200)]) for i in range(80)]
    assert run(engine, standing) == []


def test_a_track_that_restarts_in_place_is_not_a_left_object():
    """The tracker losing a standing person and starting a new id on the same spot is not an object split off."""
    engine = RuleEngine("cam", TABLE, {"object_left": {"seconds": 8}, "loitering": {"seconds": 60}})
    first = [frame(i * 200, [(1, 0, 400, 200)]) for i in range(10)]
    second = [frame(2000 + i * 200, [(2, 0, 401, 200)]) for i in range(70)]
    assert run(engine, first + second) == []


def test_the_engine_memory_survives_pickling_as_flink_state():
    """The job keeps `engine.state` in keyed state (pickled) and rebuilds engines from the camera file: a restored
    run raises the same events as an uninterrupted one."""
    frames = ([frame(i * 200, [(1, 2, 300, 20 + 15 * i)]) for i in range(20)]
              + [frame(4000 + i * 200, [(1, 2, 300, 305)]) for i in range(1, 40)])
    expected = run(RuleEngine("cam", LANE), frames)
    first = RuleEngine("cam", pickle.loads(pickle.dumps(LANE)))
    events = run(first, frames[:25])
    restored = RuleEngine("cam", LANE)
    restored.state = pickle.loads(pickle.dumps(first.state))
    assert isinstance(restored.state, RuleState)
    assert events + run(restored, frames[25:]) == expected != []
