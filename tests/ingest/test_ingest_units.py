"""Camera config validation, sampling and frame-store retention: pure logic, no servers."""

import time

import pytest

from vigil.cameras import CameraConfigError, load_cameras
from vigil.framestore import FrameNotFound, LocalFrameStore, open_frame_store
from vigil.sampling import Sampler


def test_valid_config_resolves_relative_paths(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: cam-1\n    url: clip.mp4\n    fps: 2\n    zones:\n"
                    "      - {name: lane, kind: traffic, polygon: [[0, 0], [100, 0], [100, 50]], direction: [1, 0]}\n"
                    "  - id: cam-2\n    url: rtsp://10.0.0.5/stream\n")
    config = load_cameras(path)
    assert config.cameras[0].url == str(tmp_path / "clip.mp4")
    assert config.cameras[0].zones[0].direction == (1, 0)
    assert config.cameras[1].fps == 5.0 and not config.cameras[1].is_file


@pytest.mark.parametrize("text, message", [
    ("cameras: []", "cameras"),
    ("cameras:\n  - {id: a, url: x.mp4}\n  - {id: a, url: y.mp4}", "unique.*'a'"),
    ("cameras:\n  - {id: a, url: ftp://host/x}", "unsupported URL scheme"),
    ("cameras:\n  - {id: a, url: x.mp4, fps: 0}", "fps"),
    ("cameras:\n  - {id: 'bad id!', url: x.mp4}", "id"),
    ("cameras:\n  - {id: a, url: x.mp4, zones: [{name: z, polygon: [[0, 0]]}]}", "polygon"),
    ("cameras: [unclosed", "not valid YAML"),
])
def test_invalid_config_says_what_to_fix(tmp_path, text, message):
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    with pytest.raises(CameraConfigError, match=message):
        load_cameras(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(CameraConfigError, match="does not exist"):
        load_cameras(tmp_path / "nope.yaml")


def test_sampler_keeps_target_rate():
    sampler = Sampler(fps=5)
    kept = [i for i in range(125) if sampler.take(i / 12.5)]  # 10 s of 12.5 fps
    assert len(kept) == 50
    sampler = Sampler(fps=30)  # never above the source rate
    assert sum(sampler.take(i / 10) for i in range(100)) == 100


def test_frame_store_round_trip_and_retention(tmp_path):
    store = open_frame_store((tmp_path / "frames").as_uri())
    assert isinstance(store, LocalFrameStore)
    now = int(time.time() * 1000)
    old_uri = store.put("cam-1", 0, now - 3 * 3600 * 1000, b"old", "jpg")
    recent_uri = store.put("cam-1", 1, now - 10_000, b"recent", "jpg")
    new_uri = store.put("cam-1", 2, now, b"new", "jpg")
    assert store.get(new_uri) == b"new"
    assert store.delete_older_than(now - 5_000) == 2
    for uri in (old_uri, recent_uri):
        with pytest.raises(FrameNotFound):
            store.get(uri)
    assert store.get(new_uri) == b"new"


def test_unsupported_frame_store_is_refused():
    with pytest.raises(ValueError, match="unsupported frame store"):
        open_frame_store("gs://bucket/frames")
