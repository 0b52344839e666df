"""The label store: round trip, time filtering, replacement by uri, verified-empty frames, atomic and validated puts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil.labels import LabeledFrame, LabelStore, default_root


def frame(uri, ts, boxes=(), classes=(), camera="cam-1"):
    return LabeledFrame(uri=uri, camera_id=camera, capture_ts_ms=ts, width=768, height=432,
                        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), class_id=np.asarray(classes, np.int32),
                        source="review")


def test_put_and_read_back_in_capture_order_with_time_filter(tmp_path):
    store = LabelStore(tmp_path / "labels")
    written = store.put([frame("file:///f/b.jpg", 2000, [[10, 20, 30, 40.5]], [2]),
                         frame("file:///f/a.jpg", 1000, [[1, 2, 3, 4], [5, 6, 7, 8]], [0, 7]),
                         frame("file:///f/c.jpg", 3000)])
    assert written == 3
    got = store.frames("cam-1")
    assert [f.uri for f in got] == ["file:///f/a.jpg", "file:///f/b.jpg", "file:///f/c.jpg"]
    assert got[0].xyxy.dtype == np.float32 and got[0].class_id.dtype == np.int32
    np.testing.assert_allclose(got[1].xyxy, [[10, 20, 30, 40.5]])
    assert got[0].class_id.tolist() == [0, 7] and got[0].source == "review"
    assert got[2].xyxy.shape == (0, 4) and got[2].class_id.shape == (0,)  # a verified-empty frame is kept
    assert [f.capture_ts_ms for f in store.frames("cam-1", since_ms=2000)] == [2000, 3000]
    assert [f.capture_ts_ms for f in store.frames("cam-1", until_ms=2000)] == [1000]
    assert store.frames("cam-2") == []
    assert store.cameras() == ["cam-1"]


def test_put_replaces_labels_of_the_same_uri(tmp_path):
    store = LabelStore(tmp_path)
    store.put([frame("file:///f/a.jpg", 1000, [[1, 2, 3, 4]], [2])])
    store.put([frame("file:///f/a.jpg", 1000, [[1, 2, 30, 40]], [7])])
    store.put([frame("file:///f/a.jpg", 1001)])  # even under another capture time
    got = store.frames("cam-1")
    assert len(got) == 1 and got[0].capture_ts_ms == 1001 and len(got[0].xyxy) == 0


def test_layout_is_one_json_file_per_frame_with_no_temporary_files_left(tmp_path):
    store = LabelStore(default_root(tmp_path))
    store.put([frame("file:///f/a.jpg", 1_800_000_000_000, [[1, 2, 3, 4]], [2], camera="cam/with space")])
    files = sorted(p.relative_to(default_root(tmp_path)).as_posix() for p in default_root(tmp_path).rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].startswith("cam%2Fwith%20space/1800000000000-") and files[0].endswith(".json")
    data = json.loads((default_root(tmp_path) / files[0]).read_text())
    assert data["uri"] == "file:///f/a.jpg" and data["boxes"] == [{"xyxy": [1.0, 2.0, 3.0, 4.0], "class_id": 2}]
    assert store.cameras() == ["cam/with space"]


@pytest.mark.parametrize("bad, message", [
    (frame("file:///f/x.jpg", 1, [[5, 5, 5, 9]], [2]), "x1 < x2"),
    (frame("file:///f/x.jpg", 1, [[1, 2, 3, 4]], [2, 0]), "2 class ids for 1 boxes"),
    (frame("", 1), "needs a uri"),
])
def test_a_bad_frame_writes_nothing(tmp_path, bad, message):
    store = LabelStore(tmp_path)
    with pytest.raises(ValueError, match=message):
        store.put([frame("file:///f/good.jpg", 1, [[1, 2, 3, 4]], [2]), bad])
    assert store.frames("cam-1") == []


def test_the_same_uri_twice_in_one_put_is_refused(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        LabelStore(tmp_path).put([frame("file:///f/a.jpg", 1), frame("file:///f/a.jpg", 2)])
