"""Counts on the real footage, through the whole pipeline (ingest → Triton → traffic job on Kafka → sink): every
vehicle of the hand count (load/traffic_ground_truth.json) crossing each count line, in the right direction, once;
including the stopped scenario (a car held below the line for 10 s) and the wrong-way scenario (two cars against
their lanes). Also the bins in ClickHouse: volumes that agree with the passages, and plausible car-park speeds."""

import json

import pytest

from app.scenarios import build
from load.eval_traffic import GROUND_TRUTH, TRAFFIC_SCENARIOS, run_scenarios, score_counts
from vigil.store.client import connect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traffic_run(stack, tmp_path_factory):
    from tests.conftest import isolated_settings

    settings = isolated_settings(stack)
    work = tmp_path_factory.mktemp("traffic")
    scenarios = [s for s in build(work / "clips") if s.name in TRAFFIC_SCENARIOS]
    run = run_scenarios(settings, scenarios, work / "run", pace="fast", clock="video", job_warmup_s=0)
    return settings, run


def test_counts_match_the_hand_count(traffic_run):
    _, run = traffic_run
    truth = json.loads(GROUND_TRUTH.read_text())["scenarios"]
    report = score_counts(run["passages"], truth)
    assert report["accuracy"] >= 0.95 and report["over_counted"] == 0, report["rows"]


def test_speeds_are_plausible_for_a_car_park(traffic_run):
    _, run = traffic_run
    speeds = [p["speed_kmh"] for p in run["passages"]]
    assert speeds and all(s is not None and 3 <= s <= 30 for s in speeds), speeds


def test_bins_in_clickhouse_agree_with_the_passages(traffic_run):
    settings, run = traffic_run
    client = connect(settings)
    cameras = list(TRAFFIC_SCENARIOS)
    passages = client.query("SELECT count() FROM vehicle_passages FINAL WHERE camera_id IN {c:Array(String)}",
                            parameters={"c": cameras}).result_rows[0][0]
    assert passages == len(run["passages"])
    binned = client.query("SELECT sum(volume), countIf(status = 'ok'), uniqExact(lane) FROM traffic_bins FINAL "
                          "WHERE camera_id IN {c:Array(String)}", parameters={"c": cameras}).result_rows[0]
    assert binned[0] == passages and binned[1] > 0 and binned[2] == 2
