"""The camera file under generated input (hypothesis, derandomized): generated camera files load; the same files with
one field given a value of the wrong shape, or a required field left out, fail with CameraConfigError naming that
field; arbitrary YAML, arbitrary bytes and odd strings end in CameraConfigError too. Never a KeyError, TypeError,
AttributeError or other raw traceback at start-up."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.cameras import CameraConfig, CameraConfigError, load_cameras

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

coordinate = st.floats(-2000, 2000, allow_nan=False)
point = st.tuples(coordinate, coordinate).map(list)
odd_number = st.one_of(st.floats(), st.integers(-(2**70), 2**70))  # NaN, infinities and huge integers included
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=10)
camera_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)


def rule_settings() -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(["stopped_vehicle", "wrong_way", "crowding", "loitering", "nosuch"]),
                           st.dictionaries(st.sampled_from(["seconds", "persons", "enabled", "max_cosine"]),
                                           st.one_of(st.booleans(), st.integers(0, 100), st.floats(0, 100))),
                           max_size=2)


zones = st.fixed_dictionaries(
    {"name": names, "polygon": st.lists(point, min_size=3, max_size=6)},
    optional={"kind": st.sampled_from(["traffic", "pedestrian", "restricted"]),
              "direction": point, "rules": rule_settings()})

lanes = st.fixed_dictionaries({"name": st.sampled_from(["l1", "l2"]), "number": st.integers(1, 4),
                               "polygon": st.lists(point, min_size=3, max_size=5), "direction": point},
                              optional={"free_flow_kmh": st.floats(1, 130)})
count_lines = st.fixed_dictionaries({"name": names, "lane": st.sampled_from(["l1", "l2", "l9"]), "start": point,
                                     "end": point, "positive": point})
calibrations = st.integers(4, 6).flatmap(lambda n: st.fixed_dictionaries(
    {"image_points": st.lists(point, min_size=n, max_size=n),
     "ground_points_m": st.lists(point, min_size=n, max_size=n)}))
traffic = st.fixed_dictionaries({"lanes": st.lists(lanes, max_size=2)},
                                optional={"count_lines": st.lists(count_lines, max_size=2),
                                          "detection_zones": st.lists(st.fixed_dictionaries(
                                              {"name": names, "lane": st.sampled_from(["l1", "l2"]),
                                               "polygon": st.lists(point, min_size=3, max_size=4)}), max_size=1),
                                          "calibration": calibrations})
privacy = st.fixed_dictionaries({}, optional={
    "blur": st.lists(st.sampled_from(["faces", "plates"]), max_size=2), "retention_hours": st.floats(0.5, 48)})

cameras = st.fixed_dictionaries(
    {"id": camera_ids,
     "url": st.sampled_from(["rtsp://cam.example/gate", "https://cam.example/live.m3u8", "/videos/gate.mp4",
                             "clips/gate.mp4", "file:///videos/gate.mp4"])},
    optional={"fps": st.floats(0.5, 60), "loop": st.booleans(), "pace": st.sampled_from(["native", "fast"]),
              "speed": st.floats(0.1, 8), "clock": st.sampled_from(["wall", "video"]),
              "zones": st.lists(zones, max_size=2),
              "rules": rule_settings(), "site": names, "traffic": traffic, "privacy": privacy})


def _unique_ids(cameras_list: list[dict]) -> list[dict]:
    return [{**camera, "id": f"{camera['id']}-{i}"[:64]} for i, camera in enumerate(cameras_list)]


documents = st.lists(cameras, min_size=1, max_size=3).map(_unique_ids).flatmap(
    lambda cams: st.fixed_dictionaries({"cameras": st.just(cams)}, optional={"links": st.lists(st.fixed_dictionaries(
        {"from_camera": st.sampled_from([c["id"] for c in cams] + ["ghost"]),
         "to_camera": st.sampled_from([c["id"] for c in cams]), "max_transit_s": st.floats(-5, 120)},
        optional={"min_transit_s": st.floats(-5, 60), "bidirectional": st.booleans()}), max_size=2)}))

# A value of the wrong shape for every field of the camera file: a mapping where a scalar or a list belongs, and where
# a mapping belongs one whose only key no model knows.
WRONG = {"not_a_field": [1, "x"]}


def load(text: str | bytes):
    """load_cameras on a file holding `text`: the config, or the CameraConfigError it raised."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cameras.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        try:
            return load_cameras(path)
        except CameraConfigError as exc:  # anything else propagates and fails the test
            assert str(exc).startswith(f"camera config {path}"), "the error names the file"
            return exc


def fields(node, path=()):
    """(path, key) of every mapping key in a document: the fields a mutation can break."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from fields(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from fields(value, path + (index,))


def replaced(document, path, value):
    if len(path) == 1:
        if value is _MISSING:
            return {k: v for k, v in document.items() if k != path[0]}
        return {**document, path[0]: value} if isinstance(document, dict) else \
            [value if i == path[0] else v for i, v in enumerate(document)]
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: replaced(document[head], rest, value)}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(document)]


_MISSING = object()
# (the list or mapping a field is in, the field): the fields without a default
REQUIRED = {(None, "cameras"), ("cameras", "id"), ("cameras", "url"), ("zones", "name"), ("zones", "polygon"),
            *(("lanes", f) for f in ("name", "number", "polygon", "direction")),
            *(("count_lines", f) for f in ("name", "lane", "start", "end", "positive")),
            *(("detection_zones", f) for f in ("name", "lane", "polygon")),
            ("calibration", "image_points"), ("calibration", "ground_points_m"),
            *(("links", f) for f in ("from_camera", "to_camera", "max_transit_s"))}


def container(path) -> str | None:
    return next((p for p in reversed(path[:-1]) if isinstance(p, str)), None)


@FUZZ
@given(documents)
def test_a_generated_camera_file_loads_or_says_what_is_wrong(document):
    result = load(yaml.safe_dump(document))
    assert isinstance(result, (CameraConfig, CameraConfigError))
    if isinstance(result, CameraConfig):
        assert [camera.id for camera in result.cameras] == [camera["id"] for camera in document["cameras"]]


@FUZZ
@given(documents, st.data())
def test_a_field_of_the_wrong_shape_is_named(document, data):
    path = data.draw(st.sampled_from(sorted(fields(document), key=str)), label="field")
    result = load(yaml.safe_dump(replaced(document, path, WRONG)))
    assert isinstance(result, CameraConfigError), f"{path} = {WRONG} was accepted"
    assert ".".join(str(p) for p in path) in str(result), (path, str(result))


@FUZZ
@given(documents, st.data())
def test_a_missing_required_field_is_named(document, data):
    required = [path for path in fields(document) if (container(path), path[-1]) in REQUIRED]
    path = data.draw(st.sampled_from(sorted(required, key=str)), label="field")
    result = load(yaml.safe_dump(replaced(document, path, _MISSING)))
    assert isinstance(result, CameraConfigError), f"{path} left out was accepted"
    assert ".".join(str(p) for p in path) in str(result) and "Field required" in str(result), (path, str(result))


@FUZZ
@given(documents, st.data())
def test_odd_numbers_and_strings_anywhere_end_in_the_loaders_error(document, data):
    """NaN, infinities, huge integers, control characters and NUL bytes where the file has numbers and strings."""
    path = data.draw(st.sampled_from(sorted(fields(document), key=str)), label="field")
    value = data.draw(st.one_of(odd_number, st.text(max_size=8), st.sampled_from(["\x00", "a\x00b", "[::1", "%zz"])),
                      label="value")
    result = load(yaml.safe_dump(replaced(document, path, value)))
    assert isinstance(result, (CameraConfig, CameraConfigError))


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
yaml_trees = st.recursive(yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["cameras", "id", "url", "zones", "x"]), children,
                                                    max_size=3)), max_leaves=12)


@FUZZ
@given(yaml_trees)
def test_arbitrary_yaml_ends_in_the_loaders_error(tree):
    result = load(yaml.safe_dump(tree))
    assert isinstance(result, (CameraConfig, CameraConfigError))


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.sampled_from([b"", b"\xff\xfe\x00c", b"cameras: [", b"cameras:\n\t- id: a",
                                  b"!!python/object:os.system", b"cameras: &a [*a]", b"\xef\xbb\xbfcameras: []"])))
def test_arbitrary_bytes_end_in_the_loaders_error(content):
    result = load(content)
    assert isinstance(result, (CameraConfig, CameraConfigError))


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    for path, reason in ((tmp_path, "cannot be read"), (tmp_path / "none.yaml", "does not exist")):
        try:
            load_cameras(path)
        except CameraConfigError as exc:
            assert str(path) in str(exc) and reason in str(exc)
        else:
            raise AssertionError(f"{path} loaded")


BASE = """
cameras:
  - id: a
    url: a.mp4
    zones:
      - {name: road, polygon: [[0, 0], [100, 0], [100, 50]], direction: [1, 0]}
    privacy: {blur: [faces]}
  - id: b
    url: b.mp4
links:
  - {from_camera: a, to_camera: b, min_transit_s: 1, max_transit_s: 9}
"""


@pytest.mark.parametrize("old, new, named", [
    ("    zones:\n", "    zone:\n", "zone"),                                         # misspelt camera key
    ("{name: road,", "{name: road, directon: [1, 0],", "directon"),                  # misspelt zone key
    ("privacy: {blur: [faces]}", "privacy: {blurr: [faces]}", "blurr"),               # misspelt privacy key
    ("max_transit_s: 9}", "max_transit: 9}", "max_transit"),                          # misspelt link key
    ("links:\n", "link:\n", "link"),                                                  # misspelt top-level key
    ("[100, 0], [100, 50]]", "[100, .nan], [100, 50]]", "polygon"),                  # NaN coordinate
    ("direction: [1, 0]", "direction: [.inf, 0]", "direction"),                      # infinite direction
    ("min_transit_s: 1", "min_transit_s: .nan", "min_transit_s"),                    # NaN transit
])
def test_a_misspelt_key_or_a_nan_is_named_not_dropped(old, new, named):
    assert not isinstance(load(BASE), CameraConfigError), "the base document is valid"
    assert old in BASE
    result = load(BASE.replace(old, new))
    assert isinstance(result, CameraConfigError), f"{new!r} loaded silently"
    assert named in str(result)
