"""The traffic geometry of the camera file: what is refused and why, and a calibration that maps points to metres."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from tests.traffic.synthetic import CALIBRATION, road
from vigil.cameras import CameraConfigError, load_cameras
from vigil.geometry import Calibration, CountLine, TrafficGeometry

LANE = dict(name="north", number=1, polygon=[(0, 0), (100, 0), (100, 100), (0, 100)], direction=(0, 1))
LINE = dict(name="stop", lane="north", start=(0, 50), end=(100, 50), positive=(0, 1))
IMAGE = [(300, 700), (980, 700), (700, 200), (580, 200)]
GROUND = [(0, 0), (7, 0), (7, 60), (0, 60)]


def message(excinfo) -> str:
    return str(excinfo.value)


def test_a_line_on_an_unknown_lane_names_the_lanes():
    with pytest.raises(ValidationError) as excinfo:
        TrafficGeometry(lanes=[LANE], count_lines=[{**LINE, "lane": "south"}])
    assert "count line 'stop' names lane 'south', which does not exist; the lanes are ['north']" in message(excinfo)


def test_a_zone_on_an_unknown_lane_is_refused():
    with pytest.raises(ValidationError, match="detection zone 'loop' names lane 'west'"):
        TrafficGeometry(lanes=[LANE], detection_zones=[dict(name="loop", lane="west", polygon=LANE["polygon"])])


def test_names_are_unique_and_a_lane_is_required():
    with pytest.raises(ValidationError, match=r"lane names must be unique; repeated: \['north'\]"):
        TrafficGeometry(lanes=[LANE, {**LANE, "number": 2}])
    with pytest.raises(ValidationError, match="count line names must be unique"):
        TrafficGeometry(lanes=[LANE], count_lines=[LINE, LINE])
    with pytest.raises(ValidationError, match="at least one lane"):
        TrafficGeometry(lanes=[])


def test_a_positive_direction_along_the_line_is_refused_with_a_suggestion():
    with pytest.raises(ValidationError) as excinfo:
        CountLine(**{**LINE, "positive": (1, 0.02)})
    assert "runs along the line" in message(excinfo)
    assert "e.g. (0.0, 1.0) or its opposite" in message(excinfo)
    CountLine(**{**LINE, "positive": (1, 1)})  # diagonal across the line is fine


def test_a_line_without_length_is_refused():
    with pytest.raises(ValidationError, match="end - start"):
        CountLine(**{**LINE, "end": LINE["start"]})


@pytest.mark.parametrize("image_points, ground_points_m, expected", [
    ([(0, 0), (100, 100), (200, 200), (0, 300)], GROUND, r"image_points \[0, 1, 2\] lie on one line"),
    (IMAGE, [(0, 0), (7, 0), (14, 0), (0, 60)], r"ground_points_m \[0, 1, 2\] lie on one line"),
    ([IMAGE[0], IMAGE[0], IMAGE[2], IMAGE[3]], GROUND, r"image_points\[0\] and image_points\[1\] are the same point"),
    (IMAGE + [(640, 275)], GROUND, "5 image_points but 4 ground_points_m"),
    # (640, 275) is (3.5 m, 30 m) and (640, 450) is (3.5 m, 9 m): the first given as 35 m
    (IMAGE + [(640, 275)], GROUND + [(3.5, 35)], r"do not fit one road plane within 0.5 m .*any one of them"),
    (IMAGE + [(640, 275), (640, 450)], GROUND + [(3.5, 35), (3.5, 9)],
     r"the other points put point 4 5\.\d\d m from ground_points_m\[4\]; check that image_points\[4\]"),
    ([IMAGE[0], IMAGE[1], IMAGE[3], IMAGE[2]], GROUND, "beyond the horizon"),  # two points swapped: a bow tie
])
def test_a_degenerate_calibration_says_what_is_wrong(image_points, ground_points_m, expected):
    with pytest.raises(ValidationError, match=expected):
        Calibration(image_points=image_points, ground_points_m=ground_points_m)


def test_the_homography_maps_the_four_points_back_within_a_centimetre():
    calibration = Calibration(image_points=IMAGE, ground_points_m=GROUND)
    assert np.abs(calibration.to_ground(np.asarray(IMAGE)) - np.asarray(GROUND)).max() < 0.01
    assert np.abs(calibration.to_image(np.asarray(GROUND)) - np.asarray(IMAGE)).max() < 0.01
    # perspective: a pixel far up the road covers more ground than one near the camera
    assert calibration.metres_per_pixel_at((640, 250)) > 3 * calibration.metres_per_pixel_at((640, 650))
    assert np.isnan(calibration.to_ground(np.array([[640, 50]]))).all()  # above the horizon: not on the road


def test_more_points_are_fitted_by_least_squares():
    extra_ground = [(3.5, 30.0), (1.0, 10.0)]
    extra_image = [tuple(p + 0.5) for p in CALIBRATION.to_image(np.asarray(extra_ground))]  # clicked half a px off
    calibration = Calibration(image_points=IMAGE + extra_image, ground_points_m=GROUND + extra_ground)
    assert np.abs(calibration.to_ground(np.asarray(IMAGE)) - np.asarray(GROUND)).max() < 0.1


def test_a_camera_file_with_traffic_geometry_round_trips(tmp_path):
    geometry = road()
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": [{"id": "cam-1", "url": "rtsp://cam/1", "traffic": geometry}]}))
    camera = load_cameras(path).cameras[0]
    assert camera.traffic == geometry
    assert pickle.loads(pickle.dumps(camera.traffic)) == geometry
    assert load_cameras_text(tmp_path, "cameras: [{id: c, url: rtsp://c}]").cameras[0].traffic is None


def test_the_camera_file_reports_a_bad_traffic_block(tmp_path):
    text = f"""
cameras:
  - id: c
    url: rtsp://c
    traffic:
      lanes: [{yaml.safe_dump(LANE, default_flow_style=True).strip()}]
      count_lines:
        - {{name: stop, lane: south, start: [0, 50], end: [100, 50], positive: [0, 1]}}
"""
    expected = r"cameras\.0\.traffic: .*names lane 'south'.*the lanes are \['north'\]"
    with pytest.raises(CameraConfigError, match=expected):
        load_cameras_text(tmp_path, text)


def load_cameras_text(folder, text: str):
    path = folder / "text.yaml"
    path.write_text(text)
    return load_cameras(path)
