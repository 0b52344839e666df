"""Injected anomalies in the real footage, through the whole pipeline (ingest → Triton → anomaly job on Kafka →
incidents.v1): the stopped cars, the wrong-way cars, the slowed cars, the pedestrian on the carriageway and the
composited crowd each become incidents, one per real-world event, and normal playback (~2.8 min of footage) raises
none. Bad video too: the frozen, blurred, foggy and moved car camera each become one incident within the rule's time +
10 s, and the moved camera's two stopped cars raise none (its lane rules are suspended; its incident says
detection_suspended). And the AID clips: the table top lying in lane-down is one debris incident (no stopped vehicle,
though the detector calls it a car), the two cars crawling nose to tail down lane-down one queue incident (neither is
a slow vehicle), while the red car crawling alone up lane-up is one slow vehicle."""

import pytest

from app.scenarios import build, build_aid, build_bad_video
from jobs.anomaly.rules import RuleEngine
from load.eval_anomaly import run_scenarios, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario_report(stack, tmp_path_factory):
    from tests.conftest import isolated_settings

    settings = isolated_settings(stack)
    work = tmp_path_factory.mktemp("scenarios")
    clips = work / "clips"
    scenarios = [s for s in build(clips) + build_bad_video(clips) + build_aid(clips) if s.name in SCENARIOS]
    # video clock: capture times follow the footage, so the clips can be replayed as fast as possible
    run = run_scenarios(settings, scenarios, work / "run", pace="fast", clock="video", job_warmup_s=0, settle_s=25)
    return score(scenarios, run, clock="video")


BAD_VIDEO = ["frozen", "blur", "low_contrast", "camera_moved"]
AID = ["debris", "queue"]
SCENARIOS = {"stopped", "wrong_way", "crowd", "slow", "pedestrian", "normal_cars", "normal_people", *BAD_VIDEO, *AID}
KINDS = ["stopped_vehicle", "wrong_way", "crowding", "slow_vehicle", "pedestrian", *AID]


@pytest.mark.parametrize("kind", KINDS)
def test_each_injection_is_caught_as_one_incident_in_time(scenario_report, kind):
    found = scenario_report["kinds"][kind]
    assert found["detection_rate"] == 1.0, scenario_report["kinds"]
    # never more incidents than real-world events (two cars stop, two drive the wrong way, two are slowed: up to two)
    pairs = zip(found["incidents_per_caught_injection"], found["real_events_per_caught_injection"])
    assert all(1 <= incidents <= real for incidents, real in pairs), found
    assert all(delay <= 10 + 10 for delay in found["rule_delay_s"]), found  # within the rule's time + 10 s


def test_normal_playback_raises_no_incident(scenario_report):
    false_alarms = {k: v["false_alarms_on_normal"] for k, v in scenario_report["kinds"].items() if v["false_alarms_on_normal"]}
    assert not false_alarms, [(i["camera_id"], i["kind"], i["track_ids"]) for i in scenario_report["incidents"]
                              if i["camera_id"].startswith("normal")]


@pytest.mark.parametrize("kind", BAD_VIDEO)
def test_bad_video_is_one_incident_within_the_rule_time(scenario_report, kind):
    found = scenario_report["kinds"][kind]
    assert found["detection_rate"] == 1.0 and found["incidents_per_caught_injection"] == [1], found
    assert found["rule_delay_s"][0] <= RuleEngine(kind).settings[kind][0].seconds + 10, found
    assert found["unexpected_on_other_scenarios"] == 0 and found["false_alarms_on_normal"] == 0, found


def test_the_moved_camera_raises_no_lane_incident_and_says_detection_suspended(scenario_report):
    moved = [i for i in scenario_report["incidents"] if i["camera_id"] == "camera_moved"]
    assert [(i["kind"], i["detection_suspended"]) for i in moved] == [("camera_moved", True)], moved


def test_the_aid_clips_raise_their_own_incidents_only(scenario_report):
    """One incident per real event: the debris is no stopped vehicle, the queued cars are no slow vehicles; nothing
    else raises a debris or queue incident."""
    found = {(i["camera_id"], i["kind"], tuple(i["zones"])) for i in scenario_report["incidents"]
             if i["camera_id"] in AID or i["kind"] in AID}
    assert found == {("debris", "debris", ("lane-down",)), ("queue", "queue", ("lane-down",)),
                     ("queue", "slow_vehicle", ("lane-up",))}, scenario_report["incidents"]
    for kind in AID:
        assert scenario_report["kinds"][kind]["unexpected_on_other_scenarios"] == 0
