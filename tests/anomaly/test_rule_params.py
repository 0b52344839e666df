"""Rule settings per camera and per zone (defaults ← camera `rules:` ← zone `rules:`), their validation at start-up,
and the vectorised zone geometry the engine uses."""

import numpy as np
import pytest
import yaml

from jobs.anomaly.__main__ import main as job_main
from jobs.anomaly.rules import RULES, RuleEngine, RuleSettingsError
from jobs.anomaly.synthetic import frame
from vigil.cameras import load_cameras
from vigil.zones import Zone

BAY = Zone(name="bay", kind="traffic", polygon=[(0, 0), (384, 0), (384, 432), (0, 432)], direction=(0, 1),
           rules={"stopped_vehicle": {"seconds": 3}})
ROAD = Zone(name="road", kind="traffic", polygon=[(384, 0), (768, 0), (768, 432), (384, 432)], direction=(0, 1))


def stopped_at(camera_rules=None, zones=(BAY, ROAD)):
    """Two cars park at t=0, one in each zone: when does each raise stopped_vehicle?"""
    engine = RuleEngine("cam", list(zones), camera_rules)
    fired = {}
    for i in range(60):
        for event in engine.observe(frame(i * 200, [(1, 2, 200, 200), (2, 2, 600, 200)])):
            fired[event["zone"]] = event["window_end_ms"]
    return fired


def test_a_zone_override_fires_earlier_there_and_the_default_applies_elsewhere():
    assert stopped_at() == {"bay": 3000, "road": 6000}


def test_camera_settings_are_the_default_for_its_zones_and_a_zone_setting_wins():
    assert stopped_at({"stopped_vehicle": {"seconds": 8}}) == {"bay": 3000, "road": 8000}


def test_a_rule_can_be_switched_off_in_one_zone():
    quiet_road = ROAD.model_copy(update={"rules": {"stopped_vehicle": {"enabled": False}}})
    assert stopped_at(zones=(BAY, quiet_road)) == {"bay": 3000}


@pytest.mark.parametrize("camera_rules, zone_rules, message", [
    ({}, {"stoped_vehicle": {"seconds": 3}},
     "camera 'cam', zone 'bay': unknown rule 'stoped_vehicle'; valid rules: "
     + ", ".join(sorted(rule.kind for rule in RULES))),
    ({}, {"stopped_vehicle": {"seconds": -1}},
     "camera 'cam', zone 'bay', rule 'stopped_vehicle': seconds: Input should be greater than 0 (got -1)"),
    ({}, {"loitering": {"minutes": 2}},
     "camera 'cam', zone 'bay', rule 'loitering': minutes: unknown setting (got 2). "
     "Valid settings: enabled (default True), seconds (default 30.0)"),
    ({"crowding": {"persons": 2.5}}, {},
     "camera 'cam', rule 'crowding': persons: Input should be a valid integer (got 2.5)"),
    ({}, {"crowding": {"persons": 6}},
     "camera 'cam', zone 'bay': rule 'crowding' looks at the whole camera; set it under the camera's rules:"),
])
def test_bad_settings_fail_when_the_engine_is_built_saying_what_to_fix(camera_rules, zone_rules, message):
    with pytest.raises(RuleSettingsError) as error:
        RuleEngine("cam", [BAY.model_copy(update={"rules": zone_rules})], camera_rules)
    assert message in str(error.value)


def test_the_job_refuses_to_start_with_bad_settings_in_the_camera_file(tmp_path, capsys):
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(yaml.safe_dump({"cameras": [
        {"id": "gate", "url": "rtsp://camera/gate", "rules": {"crowding": {"persons": 6}},
         "zones": [{"name": "lane", "polygon": [[0, 0], [768, 0], [768, 432]], "rules": {"wrong_way": {"cosine": 0}}}]},
    ]}))
    assert load_cameras(cameras).cameras[0].zones[0].rules == {"wrong_way": {"cosine": 0}}, "the file itself is valid"
    assert job_main(["--cameras", str(cameras), "--checkpoint-dir", str(tmp_path / "checkpoints")]) == 2
    err = capsys.readouterr().err
    assert "camera 'gate', zone 'lane', rule 'wrong_way': cosine: unknown setting (got 0)" in err
    assert "max_cosine (default -0.5)" in err
    assert not (tmp_path / "checkpoints").exists(), "stopped before starting Flink"


def test_every_registered_rule_has_a_unique_kind_and_defaults_that_validate():
    kinds = [rule.kind for rule in RULES]
    assert len(set(kinds)) == len(kinds)
    for rule in RULES:
        assert rule.params("test").enabled


def scalar_contains(polygon, x, y):
    """The scalar even-odd test the rules used before zones became vectorised: the reference."""
    inside = False
    for i in range(len(polygon)):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % len(polygon)]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


@pytest.mark.parametrize("polygon", [
    [(0, 0), (768, 0), (768, 432), (0, 432)],  # the whole image
    [(100, 100), (400, 100), (400, 300), (250, 180), (100, 300)],  # concave (a notch from below)
    [(50, 50), (300, 60), (120, 200), (310, 380), (20, 400), (90, 210)],  # concave, slanted edges
    [(0, 200), (768, 150), (768, 432), (0, 432)],
])
def test_vectorised_contains_matches_the_scalar_reference(polygon):
    rng = np.random.default_rng(7)
    vertices = np.asarray(polygon, dtype=float)
    edge_points = [a + t * (b - a) for a, b in zip(vertices, np.roll(vertices, -1, 0)) for t in (0.0, 0.25, 0.5)]
    points = np.concatenate([
        rng.uniform(-50, 820, (3000, 2)),  # anywhere, including outside the image
        rng.integers(0, 769, (2000, 2)).astype(float),  # on the grid the polygon's vertices and edges lie on
        np.asarray(edge_points),  # exactly on vertices and edges
    ]).astype(np.float32)  # the engine's anchors are float32
    zone = Zone(name="z", polygon=polygon)
    expected = [scalar_contains(vertices, float(x), float(y)) for x, y in points]
    assert zone.contains(points).tolist() == expected
    assert zone.contains(points[:0]).shape == (0,)


def test_zone_geometry_is_cached_and_the_direction_is_a_unit_vector():
    zone = Zone(name="lane", polygon=[(0, 0), (10, 0), (10, 10)], direction=(3, 4))
    assert zone.vertices is zone.vertices and zone.vertices.shape == (3, 2)
    np.testing.assert_allclose(zone.direction_vector, [0.6, 0.8])
    assert Zone(name="lane", polygon=[(0, 0), (10, 0), (10, 10)]).direction_vector is None
