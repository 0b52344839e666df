"""The traffic engine over synthetic traffic: passages as they happen, and one bin per lane with volumes by class and
direction, speeds, occupancy, headway, gap, status and traffic state; and it survives a pickle mid-stream."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jobs.traffic.engine import TrafficEngine
from tests.traffic.synthetic import CALIBRATION, CAMERA, drive, frames, road, stay

PERSON, BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK = 0, 1, 2, 3, 5, 7
LANE1_X, LANE2_X = 1.75, 5.25
MINUTE = 60_000
((IN_LOOP1_X, IN_LOOP1_Y), (BEFORE_LOOP1_X, BEFORE_LOOP1_Y)) = CALIBRATION.to_image(
    np.array([[LANE1_X, 10.5], [LANE1_X, 5.0]])).tolist()


def run(engine: TrafficEngine, detection_frames) -> list[dict]:
    return [passage for frame in detection_frames for passage in engine.observe(frame)]


def by_lane(records: list[dict]) -> dict[str, dict]:
    return {record["lane"]: record for record in records}


def mixed_traffic() -> list:
    """One minute: lane 1 three cars and a truck towards the camera, a bus away from it, a person and an untracked
    car; lane 2 a car, a motorcycle and a bicycle towards the camera."""
    return (drive(1, CAR, 50, 0) + drive(2, CAR, 50, 5_000) + drive(3, CAR, 50, 10_000) + drive(4, TRUCK, 50, 15_000)
            + drive(5, BUS, 50, 20_000, from_y_m=-2, to_y_m=50)
            + drive(6, PERSON, 5, 25_000, from_y_m=22, to_y_m=18) + drive(-1, CAR, 50, 30_000)
            + drive(7, CAR, 50, 35_000, x_m=LANE2_X) + drive(8, MOTORCYCLE, 60, 40_000, x_m=LANE2_X)
            + drive(9, BICYCLE, 15, 45_000, x_m=LANE2_X))


def test_passages_as_they_happen_and_volumes_by_class_and_direction():
    engine = TrafficEngine(CAMERA, road())
    passages = run(engine, frames(mixed_traffic(), 0, MINUTE + 1_000))
    assert [(p["passage_id"], p["lane"], p["lane_number"], p["class_id"], p["direction"]) for p in passages] == [
        ("cam-1:line1:1", "lane1", 1, CAR, 1), ("cam-1:line1:2", "lane1", 1, CAR, 1),
        ("cam-1:line1:3", "lane1", 1, CAR, 1), ("cam-1:line1:4", "lane1", 1, TRUCK, 1),
        ("cam-1:line1:5", "lane1", 1, BUS, -1), ("cam-1:line2:7", "lane2", 2, CAR, 1),
        ("cam-1:line2:8", "lane2", 2, MOTORCYCLE, 1), ("cam-1:line2:9", "lane2", 2, BICYCLE, 1)]
    first = passages[0]
    assert set(first) == {"passage_id", "camera_id", "lane", "lane_number", "line", "track_id", "class_id",
                          "direction", "ts_ms", "speed_kmh"}
    assert (first["camera_id"], first["line"], first["track_id"]) == (CAMERA, "line1", 1)
    assert first["ts_ms"] == pytest.approx(30 / (50 / 3.6) * 1000, abs=60)  # 30 m at 50 km/h
    assert [p["speed_kmh"] for p in passages] == pytest.approx([50, 50, 50, 50, 50, 50, 60, 15], abs=2)

    lanes = by_lane(engine.close_bin(0, "ONLINE"))
    lane1, lane2 = lanes["lane1"], lanes["lane2"]
    assert lane1["volume_by_class"] == {"bicycle": 0, "car": 3, "motorcycle": 0, "bus": 1, "truck": 1}
    assert (lane1["volume"], lane1["volume_positive"], lane1["volume_negative"]) == (5, 4, 1)
    assert lane2["volume_by_class"] == {"bicycle": 1, "car": 1, "motorcycle": 1, "bus": 0, "truck": 0}
    assert (lane2["volume"], lane2["volume_positive"], lane2["volume_negative"]) == (3, 3, 0)
    assert lane1["mean_speed_kmh"] == pytest.approx(50, abs=1.5)
    assert lane2["mean_speed_kmh"] == pytest.approx((50 + 60 + 15) / 3, abs=1.5)
    assert lane2["p85_speed_kmh"] == pytest.approx(np.percentile([50, 60, 15], 85), abs=2)
    assert (lane1["bin_id"], lane1["bin_start_ms"], lane1["bin_end_ms"]) == ("cam-1:lane1:0", 0, MINUTE)
    assert (lane1["status"], lane1["speed_available"], lane1["frames"]) == ("ok", True, 600)


def test_passage_ids_and_bins_are_deterministic():
    traffic = frames(mixed_traffic(), 0, MINUTE + 1_000)
    results = []
    for _ in range(2):
        engine = TrafficEngine(CAMERA, road())
        results.append((run(engine, traffic), engine.close_bin(0, None)))
    assert results[0] == results[1]


def test_a_zone_held_half_the_minute_is_50_percent_occupied_and_stationary():
    engine = TrafficEngine(CAMERA, road())
    run(engine, frames(stay(1, CAR, IN_LOOP1_X, IN_LOOP1_Y, 0, 30_000), 0, MINUTE + 100))
    lanes = by_lane(engine.close_bin(0, "ONLINE"))
    assert lanes["lane1"]["occupancy_pct"] == pytest.approx(50, abs=0.5)
    assert (lanes["lane1"]["volume"], lanes["lane1"]["status"]) == (0, "ok")
    assert lanes["lane1"]["traffic_state"] == "stationary"  # >= 50 % occupied, nobody passed
    assert lanes["lane2"]["occupancy_pct"] == 0
    assert (lanes["lane2"]["status"], lanes["lane2"]["traffic_state"]) == ("no_activity", "unknown")


def test_time_without_frames_is_unobserved_not_empty():
    standing = stay(1, CAR, IN_LOOP1_X, IN_LOOP1_Y, 0, MINUTE + 100)
    stalled = frames(standing, 0, 20_000) + frames(standing, 40_000, MINUTE + 100)  # 20 s without frames
    engine = TrafficEngine(CAMERA, road())
    run(engine, stalled)
    lane1 = by_lane(engine.close_bin(0, None))["lane1"]
    assert lane1["occupancy_pct"] == pytest.approx(100)
    assert lane1["frames"] == 400


def test_headway_and_gap_between_vehicles_entering_the_zone():
    # every 4 s a car enters the loop, stands in it for 1.5 s, leaves it and is gone 0.5 s later
    cars = []
    for k in range(5):
        cars += stay(k + 1, CAR, IN_LOOP1_X, IN_LOOP1_Y, 4_000 * k, 4_000 * k + 1_500)
        cars += stay(k + 1, CAR, BEFORE_LOOP1_X, BEFORE_LOOP1_Y, 4_000 * k + 1_500, 4_000 * k + 2_000)
    engine = TrafficEngine(CAMERA, road())
    run(engine, frames(cars, 0, MINUTE + 100))
    lanes = by_lane(engine.close_bin(0, None))
    assert lanes["lane1"]["mean_headway_s"] == pytest.approx(4.0)
    assert lanes["lane1"]["mean_gap_s"] == pytest.approx(2.5)
    assert lanes["lane1"]["occupancy_pct"] == pytest.approx(100 * 5 * 1.5 / 60)
    assert lanes["lane2"]["mean_headway_s"] is None and lanes["lane2"]["mean_gap_s"] is None


def test_one_vehicle_has_no_headway():
    engine = TrafficEngine(CAMERA, road())
    run(engine, frames(stay(1, CAR, IN_LOOP1_X, IN_LOOP1_Y, 1_000, 3_000), 0, MINUTE + 100))
    lane1 = by_lane(engine.close_bin(0, None))["lane1"]
    assert lane1["mean_headway_s"] is None and lane1["mean_gap_s"] is None


@pytest.mark.parametrize("camera_state, status", [
    ("OFFLINE", "camera_offline"), ("ENDED", "camera_offline"), ("DEGRADED", "camera_degraded"),
    ("ONLINE", "ok"), (None, "ok"),
])
def test_the_camera_state_comes_first(camera_state, status):
    engine = TrafficEngine(CAMERA, road())
    run(engine, frames(drive(1, CAR, 50, 0), 0, MINUTE + 100))
    lane1 = by_lane(engine.close_bin(0, camera_state))["lane1"]
    assert (lane1["status"], lane1["volume"]) == (status, 1)


def test_no_data_and_no_activity():
    engine = TrafficEngine(CAMERA, road())
    run(engine, frames([], MINUTE, 2 * MINUTE + 100))  # the first minute has no frame, the second no vehicle
    empty = by_lane(engine.close_bin(0, None))["lane1"]
    assert (empty["status"], empty["frames"], empty["occupancy_pct"], empty["volume"]) == ("no_data", 0, None, 0)
    assert (empty["mean_speed_kmh"], empty["p85_speed_kmh"], empty["traffic_state"]) == (None, None, "unknown")
    quiet = by_lane(engine.close_bin(MINUTE, "ONLINE"))["lane1"]
    assert (quiet["status"], quiet["frames"], quiet["occupancy_pct"]) == ("no_activity", 600, 0)


def test_without_calibration_or_zones_there_is_no_speed_nor_occupancy():
    engine = TrafficEngine(CAMERA, road(calibrated=False, zones=False, free_flow_kmh=50))
    passages = run(engine, frames(drive(1, CAR, 50, 0), 0, MINUTE + 100))
    assert [p["speed_kmh"] for p in passages] == [None]
    lane1 = by_lane(engine.close_bin(0, None))["lane1"]
    assert (lane1["speed_available"], lane1["mean_speed_kmh"], lane1["occupancy_pct"]) == (False, None, None)
    assert (lane1["volume"], lane1["status"], lane1["free_flow_kmh"]) == (1, "ok", 50)
    assert lane1["traffic_state"] == "unknown"  # a free-flow speed, but no speeds to compare with it


def cars_every_5_s(minute: int, speed_kmh: float, count: int, first_track: int) -> list:
    return [point for k in range(count)
            for point in drive(first_track + k, CAR, speed_kmh, minute * MINUTE + 5_000 * k)]


def test_free_flow_is_learned_from_uncongested_passages():
    engine = TrafficEngine(CAMERA, road())
    traffic = (cars_every_5_s(0, 90, 10, 100) + cars_every_5_s(1, 90, 10, 200) + cars_every_5_s(2, 30, 10, 300))
    run(engine, frames(traffic, 0, 3 * MINUTE + 1_000))
    first, second, third = (by_lane(engine.close_bin(m * MINUTE, "ONLINE"))["lane1"] for m in range(3))
    assert first["occupancy_pct"] < 15
    assert (first["volume"], first["traffic_state"], first["free_flow_kmh"]) == (10, "unknown", None)  # 10 < 20 seen
    assert second["free_flow_kmh"] == pytest.approx(90, abs=2)
    assert second["traffic_state"] == "freeFlow"
    assert third["mean_speed_kmh"] == pytest.approx(30, abs=2)
    assert third["traffic_state"] == "queuing"  # 30 / 90 = 0.33
    assert by_lane(engine.close_bin(3 * MINUTE, "ONLINE"))["lane2"]["free_flow_kmh"] is None  # nothing on lane 2


@pytest.mark.parametrize("speed_kmh, state", [(50, "freeFlow"), (36, "heavy"), (24, "slow"), (12, "queuing")])
def test_a_configured_free_flow_speed_sets_the_state(speed_kmh, state):
    engine = TrafficEngine(CAMERA, road(free_flow_kmh=60))
    run(engine, frames(cars_every_5_s(0, speed_kmh, 2, 1), 0, MINUTE + 100))
    lane1 = by_lane(engine.close_bin(0, None))["lane1"]
    assert (lane1["free_flow_kmh"], lane1["traffic_state"]) == (60, state)


def test_a_passage_belongs_to_the_bin_of_its_crossing_and_late_frames_to_their_own():
    # 30 m at 50 km/h take 2160 ms: the car crosses at ~59.96 s, is past the band only in the next bin's frames
    crossing_late = drive(1, CAR, 50, MINUTE - 2_200)
    engine = TrafficEngine(CAMERA, road())
    ordered = frames(crossing_late, 0, MINUTE + 1_000)
    late = ordered.pop(-15)  # the frame at 59.5 s arrives after those of the next bin
    passages = run(engine, ordered) + engine.observe(late)
    assert len(passages) == 1 and passages[0]["ts_ms"] < MINUTE
    first, second = by_lane(engine.close_bin(0, None))["lane1"], by_lane(engine.close_bin(MINUTE, None))["lane1"]
    assert (first["volume"], second["volume"]) == (1, 0)
    assert (first["frames"], second["frames"]) == (600, 10)
    assert engine.observe(late) == [] and engine.open_bins() == []  # its bin is closed: dropped


def test_the_engine_pickles_mid_stream_with_identical_results():
    traffic = mixed_traffic() + stay(50, CAR, IN_LOOP1_X, IN_LOOP1_Y, 40_000, 80_000) + cars_every_5_s(1, 70, 8, 60)
    detection_frames = frames(traffic, 0, 2 * MINUTE + 1_000)
    straight_through = TrafficEngine(CAMERA, road())
    expected = run(straight_through, detection_frames)
    expected_bins = straight_through.close_bin(0, None) + straight_through.close_bin(MINUTE, None)

    restored, passages, start = TrafficEngine(CAMERA, road()), [], 0
    for cut in (22, 137, 450, 640, len(detection_frames)):  # mid-crossing, mid-bin, around the bin boundary
        passages += run(restored, detection_frames[start:cut])
        restored, start = pickle.loads(pickle.dumps(restored)), cut
    assert passages == expected
    assert restored.close_bin(0, None) + restored.close_bin(MINUTE, None) == expected_bins


def test_without_geometry_the_engine_counts_nothing():
    engine = TrafficEngine(CAMERA, None)
    assert run(engine, frames(drive(1, CAR, 50, 0), 0, 5_000)) == []
    assert engine.close_bin(0, None) == []
