"""The analyst cookbook runs against the real store: every query of app/cookbook.py (shown verbatim in the README)
on known traffic bins and passages, with the answers an analyst expects, and the rollups exact under a replay."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app import cookbook
from vigil.outputs.clickhouse import ClickHouseOutput
from vigil.store.client import connect
from vigil.topics import TRAFFIC

pytestmark = pytest.mark.slow
HOUR = 3_600_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR
SINCE, UNTIL = "2027-01-01 00:00:00", "2027-12-31 00:00:00"


def traffic_bin(camera, lane, number, minute, volume, cars, speed, occupancy, status="ok", negative=0):
    start = T0 + minute * 60_000
    return dict(bin_id=f"{camera}:{lane}:{start}", camera_id=camera, lane=lane, lane_number=number, bin_start_ms=start,
                bin_end_ms=start + 60_000, volume_by_class={"car": cars, "truck": volume - cars, "bus": 0,
                                                            "motorcycle": 0, "bicycle": 0},
                volume=volume, volume_positive=volume - negative, volume_negative=negative,
                mean_speed_kmh=speed, p85_speed_kmh=speed, occupancy_pct=occupancy, mean_headway_s=None,
                mean_gap_s=None, status=status, speed_available=True, traffic_state="freeFlow", free_flow_kmh=50.0,
                frames=300 if status == "ok" else 0, emitted_ts_ms=start + 60_000)


@pytest.fixture(scope="module")
def camera(stack):
    camera = f"cook-{uuid.uuid4().hex[:6]}"
    bins = []
    for minute in range(120):  # two hours; the second hour is busier in lane-a
        volume = 10 if minute >= 60 else 4
        bins.append(traffic_bin(camera, "lane-a", 1, minute, volume, volume - 1, 40.0 + minute % 3, 5.0 + volume))
        bins.append(traffic_bin(camera, "lane-b", 2, minute, 2, 2, 30.0, 3.0, negative=1))
    for minute in (70, 71):  # the camera was down for two minutes
        bins[2 * minute] = traffic_bin(camera, "lane-a", 1, minute, 0, 0, None, None, status="camera_offline")
    passages = [dict(passage_id=f"{camera}:line-a:{i}", camera_id=camera, lane="lane-a", lane_number=1, line="line-a",
                     track_id=i, class_id=2, direction=1, ts_ms=T0 + i * 1000, speed_kmh=float(30 + i % 20),
                     emitted_ts_ms=T0) for i in range(100)]
    output = ClickHouseOutput(stack)
    for record in bins:
        output.write(TRAFFIC, "TrafficBin", record)
    for record in passages:
        output.write(TRAFFIC, "VehiclePassage", record)
    assert output.flush()
    for record in bins[:30]:  # a replay of some bins: rollups must not count them twice
        output.write(TRAFFIC, "TrafficBin", record)
    assert output.flush()
    return camera


def rows(stack, name, camera):
    return cookbook.run(connect(stack), name, camera, SINCE, UNTIL).result_rows


def test_lane_minutes_and_camera_down(stack, camera):
    minutes = rows(stack, "lane_minutes", camera)
    assert len(minutes) == 240  # two lanes x 120 minutes, replayed bins once
    down = rows(stack, "camera_down_minutes", camera)
    assert down == [("lane-a", "camera_offline", 2)]


def test_peak_hour_from_the_rollup_counts_a_replay_once(stack, camera):
    peak = dict((lane, (hour, vehicles)) for lane, hour, vehicles in rows(stack, "peak_hour", camera))
    assert peak["lane-a"][1] == 58 * 10  # second hour, minus the two offline minutes
    assert peak["lane-a"][0].hour == (T0 // HOUR + 1) % 24
    assert peak["lane-b"][1] == 120  # 60 x 2, the replayed first 15 bins not doubled
    volume_15 = connect(stack).query("SELECT sum(volume) FROM traffic_15min WHERE camera_id = {c:String}",
                                     parameters={"c": camera}).result_rows[0][0]
    assert volume_15 == 60 * 4 + 58 * 10 + 120 * 2


def test_class_mix_speeds_flow_occupancy_and_direction(stack, camera):
    mix = {cls: (n, share) for cls, n, share in rows(stack, "class_mix", camera)}
    assert mix["car"][0] == 60 * 3 + 58 * 9 + 240 and mix["truck"][0] == 60 + 58
    assert abs(sum(share for _, share in mix.values()) - 100) < 0.2
    bands = rows(stack, "speed_distribution", camera)
    assert sum(n for _, _, n in bands) == 100 and {b for _, b, _ in bands} == {30, 35, 40, 45}
    points = rows(stack, "flow_occupancy", camera)
    assert len(points) == 238 and max(flow for _, _, flow, _ in points) == 600.0
    split = {lane: (w, a) for lane, w, a, _ in rows(stack, "directional_split", camera)}
    assert split["lane-b"] == (120, 120) and split["lane-a"][1] == 0


def test_the_readme_shows_every_query_verbatim():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, (_, sql) in cookbook.COOKBOOK.items():
        assert sql in readme, f"README's cookbook misses the current {name} query: paste app.cookbook.markdown()"
