"""Synthetic TrackSummary records for tests of the matching logic and the job (the real-footage scenario is in
vigil/reid_scenario.py)."""

from __future__ import annotations

import numpy as np


def appearance(seed: int, dim: int = 32) -> np.ndarray:
    """A random unit vector: one object's 'true' appearance."""
    vector = np.random.default_rng(seed).normal(size=dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def observed(base: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """`base` as another camera sees it: perturbed and re-normalised."""
    vector = base + np.random.default_rng(seed).normal(scale=noise, size=base.shape)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def summary(camera_id: str, track_id: int, first_ms: int, last_ms: int, embedding, class_id: int = 0,
            final: bool = True, sequence: int = 0, embedder: str = "test:1") -> dict:
    return dict(summary_id=f"{camera_id}:{track_id}:{sequence}", camera_id=camera_id, track_id=track_id,
                sequence=sequence, final=final, class_id=class_id, first_seen_ms=first_ms, last_seen_ms=last_ms,
                detections=max(1, (last_ms - first_ms) // 200), entry_xy=[10.0, 20.0], exit_xy=[300.0, 20.0],
                embedding=[float(v) for v in embedding], embedding_samples=8, embedder=embedder,
                best_crop_uri=None, emitted_ts_ms=last_ms + 2000)
