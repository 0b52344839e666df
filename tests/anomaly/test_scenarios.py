"""Injected anomalies in the real footage, through the whole pipeline (ingest → Triton → anomaly job on Kafka):
the stopped cars, the wrong-way cars and the composited crowd are caught, and normal playback stays under the stated false-alarm rate
(at most 1 rule event on the untouched car and person videos together, ~2.8 min of footage)."""

import pytest

from app.scenarios import build
from load.eval_anomaly import run_scenarios, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario_report(stack, tmp_path_factory):
    from tests.conftest import isolated_settings

    settings = isolated_settings(stack)
    work = tmp_path_factory.mktemp("scenarios")
    scenarios = build(work / "clips")
    # video clock: capture times follow the footage, so the clips can be replayed as fast as possible
    run = run_scenarios(settings, scenarios, work / "run", pace="fast", clock="video", job_warmup_s=0, settle_s=20)
    return score(scenarios, run, clock="video")


def test_stopped_vehicle_is_caught(scenario_report):
    assert scenario_report["kinds"]["stopped_vehicle"]["recall"] == 1.0, scenario_report


def test_wrong_way_car_is_caught(scenario_report):
    assert scenario_report["kinds"]["wrong_way"]["recall"] == 1.0, scenario_report


def test_crowd_is_caught(scenario_report):
    assert scenario_report["kinds"]["crowding"]["recall"] == 1.0, scenario_report


def test_normal_playback_stays_under_the_false_alarm_rate(scenario_report):
    false_alarms = sum(k["false_alarms_on_normal"] for k in scenario_report["kinds"].values())
    assert false_alarms <= 1, [(e["camera_id"], e["kind"], e["track_ids"]) for e in scenario_report["events"]]
