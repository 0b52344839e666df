"""Slow vehicle: moving on, far slower than traffic, in both halves of the window; stopping and normal traffic are not."""

import pytest

from jobs.anomaly.rules import RuleEngine, RuleSettingsError
from jobs.anomaly.synthetic import LANE, frame, normal_traffic


def run(engine, frames):
    return [e for f in frames for e in engine.observe(f)]


def test_a_crawling_truck_is_reported_once_after_the_set_time():
    engine = RuleEngine("cam", LANE)
    crawl = [frame(i * 200, [(9, 7, 300, 20 + 4 * i)]) for i in range(50)]  # a truck at 20 px/s for 10 s
    events = run(engine, crawl)
    assert [(e["kind"], e["track_ids"]) for e in events] == [("slow_vehicle", [9])]
    assert 19 <= events[0]["score"] <= 21 and events[0]["threshold"] == 35
    assert 4000 <= events[0]["window_end_ms"] <= 5000


def test_normal_traffic_and_a_car_braking_to_a_stop_are_not_slow():
    engine = RuleEngine("cam", LANE)
    frames = normal_traffic(0, 30, 1)  # 60 px/s
    # decelerates from 75 px/s to a standstill over 2 s, then stands: the stopped-vehicle rule's case
    braking = [frame(30_000 + i * 200, [(50, 2, 500, 20 + sum(max(0, 15 - 1.5 * k) for k in range(i)))]) for i in range(60)]
    kinds = [e["kind"] for e in run(engine, frames + braking)]
    assert "slow_vehicle" not in kinds and "stopped_vehicle" in kinds


def test_thresholds_per_zone_and_their_validation():
    engine = RuleEngine("cam", LANE, {"slow_vehicle": {"max_speed_px_s": 80}})
    assert [e["kind"] for e in run(engine, normal_traffic(0, 20, 1))][:1] == ["slow_vehicle"]
    with pytest.raises(RuleSettingsError, match="min_speed_px_s .* must be below max_speed_px_s"):
        RuleEngine("cam", LANE, {"slow_vehicle": {"min_speed_px_s": 50, "max_speed_px_s": 40}})
