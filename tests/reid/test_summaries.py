"""Track summaries in the inference service, without I/O: what a summary says about a track (times, positions, class
vote, robust mean embedding, best crop), when it is due, and that summaries of one track are numbered."""

import numpy as np

from services.reid.summaries import TrackSummaries
from vigil.detections import Detections
from vigil.reid_embedding import CROP_H, CROP_W, robust_mean


def frame(x, track_id=7, class_id=0, confidence=0.9):
    return Detections(np.array([[x, 100, x + 40, 200]], np.float32), np.array([confidence], np.float32),
                      np.array([class_id]), np.array([track_id]))


def test_a_track_summary_describes_the_track():
    rgb = np.zeros((432, 768, 3), np.uint8)
    summaries = TrackSummaries(embed_every=2, interval_ms=30_000)
    rng = np.random.default_rng(0)
    for i in range(10):
        summaries.observe("cam", 1_000 + i * 200, frame(100 + 20 * i, class_id=0 if i != 3 else 2), rgb)
        crops = summaries.pending_crops()
        if crops is not None:
            assert crops.shape[1:] == (CROP_H, CROP_W, 3)
            summaries.add_embeddings(rng.normal(size=(len(crops), 8)).astype(np.float32))
    assert summaries.due("cam", 1_000 + 9 * 200) == [], "not due before the interval"
    assert len(summaries.due("cam", 31_000)) == 1, "a live track is summarised every interval"
    (state,) = summaries.end("cam", [7])
    record = summaries.record(state, True, "reid_color:1", "file:///crop.jpg", 5_000)
    assert record["summary_id"] == "cam:7:0" and record["final"] and record["class_id"] == 0
    assert (record["first_seen_ms"], record["last_seen_ms"], record["detections"]) == (1_000, 2_800, 10)
    assert record["entry_xy"] == [120.0, 150.0] and record["exit_xy"] == [300.0, 150.0]
    assert record["embedding_samples"] == 5, "every 2nd detection is embedded"
    assert np.isclose(np.linalg.norm(record["embedding"]), 1.0)
    assert state.best_crop.shape == (100, 40, 3)
    assert summaries.record(state, True, "", None, 0)["summary_id"] == "cam:7:1"
    assert summaries.end("cam", [7]) == [], "an ended track is gone"


def test_robust_mean_ignores_outliers():
    base = np.tile(np.array([1.0, 0, 0], np.float32), (8, 1)) + np.random.default_rng(1).normal(scale=0.05, size=(8, 3))
    with_outliers = np.vstack([base, [[0, 1, 0], [0, 0, 1]]]).astype(np.float32)
    assert robust_mean(with_outliers) @ np.array([1.0, 0, 0]) > 0.99
    assert robust_mean(np.zeros((0, 3))).size == 0
