"""How well each re-ID embedder separates the same person from different people across cameras, replayed over crops:
the re-ID scenario's three views (app/reid_scenario.py) are detected and tracked in process (the pipeline's detector,
sampling and tracker), every 2nd detection of a track is cropped (as the embed service does), the crops are embedded
through a real tritonserver by each embedder, and each track gets the robust mean the track summaries carry.

It takes minutes, not the ~9 min per embedder of the full pipeline (load/eval_reid.py), and scores the embeddings
alone, without the job's gates. In-sample: the trained embedders were trained on the same footage (set-up trains them
on the scenario's tracks, without identity labels). A track's true identity is the visit its times fall in.

Figures, over tracks with an identity and at least 4 crops:
- cross-camera track pairs (the robust means): mean cosine of same-person and of different-person pairs, their gap,
  the AUC (the chance a same-person pair scores above a different-person pair), and the share of each at or above
  the job's similarity threshold (0.7; each embedder has its own scale);
- rank-1: for each track, whether the most similar track on each other camera is the same person;
- the same over single crops (cross-camera crop pairs), without the robust mean.

    .venv/bin/python load/eval_reid_crops.py --out load/results/reid_crops.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import numpy as np  # noqa: E402

EMBEDDERS = ("reid_color", "reid_learned", "reid_pretrained")
JOB_THRESHOLD = 0.7  # the re-ID job's default VIGIL_REID_MIN_SIMILARITY


@dataclass
class Track:
    camera_id: str
    track_id: int
    identity: str
    crops: np.ndarray  # uint8 [n, 128, 64, 3]


def scenario_tracks(detector_name: str, fps: float = 5.0, embed_every: int = 2, min_crops: int = 4,
                    max_crops: int = 32) -> list[Track]:
    """The scenario's person tracks with a true identity, each with up to `max_crops` of every `embed_every`-th crop."""
    import av

    from app import reid_scenario
    from app.inprocess import detector as load_detector
    from vigil.config import Settings
    from vigil.reid_embedding import crop_boxes
    from vigil.sampling import Sampler
    from vigil.tracker import ByteTracker, detect_and_track

    videos = reid_scenario.build(Settings().data_dir / "reid-clips")
    detector = load_detector(detector_name)
    tracks = []
    for camera_id, path in videos.items():
        tracker, sampler = ByteTracker(), Sampler(fps)
        seen: dict[int, list] = defaultdict(list)  # track → [(time_s, height, crop or None)]
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if not sampler.take(frame.time):
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                tracked = detect_and_track(detector, tracker, camera_id, rgb)
                keep = [i for i, (t, c) in enumerate(zip(tracked.tracker_id, tracked.class_id)) if t >= 0 and c == 0]
                for i, image in zip(keep, crop_boxes(rgb, tracked.xyxy[keep])):
                    track_id, (x1, y1, x2, y2) = int(tracked.tracker_id[i]), tracked.xyxy[i]
                    observations = seen[track_id]
                    observations.append((float(frame.time), float(y2 - y1),
                                         image if len(observations) % embed_every == 0 else None))
        for track_id, observations in seen.items():
            crops = [c for _, _, c in observations if c is not None][:max_crops]
            identity = reid_scenario.identity(camera_id, observations[0][0], observations[-1][0],
                                              float(np.median([h for _, h, _ in observations])))
            if identity and len(crops) >= min_crops:
                tracks.append(Track(camera_id, track_id, identity, np.stack(crops)))
    return tracks


def _auc(same: np.ndarray, different: np.ndarray) -> float | None:
    from scipy.stats import mannwhitneyu

    if not len(same) or not len(different):
        return None
    return float(mannwhitneyu(same, different).statistic / (len(same) * len(different)))


def _pairs(vectors: np.ndarray, identities: np.ndarray, cameras: np.ndarray) -> dict:
    similarity = vectors @ vectors.T
    upper = np.triu(np.ones_like(similarity, bool), 1) & (cameras[:, None] != cameras[None, :])
    same = upper & (identities[:, None] == identities[None, :])
    different = upper & (identities[:, None] != identities[None, :])
    a, b = similarity[same], similarity[different]
    return {"same_pairs": int(same.sum()), "different_pairs": int(different.sum()),
            "same_mean": round(float(a.mean()), 3), "different_mean": round(float(b.mean()), 3),
            "gap": round(float(a.mean() - b.mean()), 3), "auc": round(_auc(a, b), 3),
            "same_at_threshold": round(float((a >= JOB_THRESHOLD).mean()), 3),
            "different_at_threshold": round(float((b >= JOB_THRESHOLD).mean()), 3)}


def _rank1(vectors: np.ndarray, identities: np.ndarray, cameras: np.ndarray) -> dict:
    similarity, hits, queries = vectors @ vectors.T, 0, 0
    for i in range(len(vectors)):
        for camera in set(cameras) - {cameras[i]}:
            gallery = np.flatnonzero(cameras == camera)
            if identities[i] not in identities[gallery]:
                continue
            queries += 1
            hits += identities[gallery[np.argmax(similarity[i, gallery])]] == identities[i]
    return {"queries": queries, "hits": int(hits), "rank1": round(hits / queries, 3) if queries else None}


def separation(tracks: list[Track], embed) -> dict:
    """The figures of one embedder; `embed(crops) → unit vectors [n, D]`."""
    from vigil.reid_embedding import robust_mean

    started = time.perf_counter()
    per_track = [embed(t.crops) for t in tracks]
    seconds = time.perf_counter() - started
    means = np.stack([robust_mean(v) for v in per_track])
    identities, cameras = np.array([t.identity for t in tracks]), np.array([t.camera_id for t in tracks])
    crop_vectors = np.concatenate(per_track)
    crop_identities = np.concatenate([[t.identity] * len(v) for t, v in zip(tracks, per_track)])
    crop_cameras = np.concatenate([[t.camera_id] * len(v) for t, v in zip(tracks, per_track)])
    return {"tracks": _pairs(means, identities, cameras) | _rank1(means, identities, cameras),
            "crops": _pairs(crop_vectors, crop_identities, crop_cameras),
            "embedding_s": round(seconds, 1), "dim": int(crop_vectors.shape[1])}


def main() -> int:
    from load._harness import machine, private_settings
    from app.stack import manager
    from services.reid.embedder import TritonEmbedder
    from vigil.config import REPO_ROOT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--embedders", nargs="+", default=list(EMBEDDERS))
    parser.add_argument("--detector", default="yolox_nano", help="the pipeline's default; set-up trains on "
                        "motion_detector crops")
    parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args()
    started = time.monotonic()
    tracks = scenario_tracks(args.detector, args.fps)
    print(f"{len(tracks)} tracks, {sum(len(t.crops) for t in tracks)} crops ({time.monotonic() - started:.0f} s)", flush=True)
    settings = private_settings(model_repository=REPO_ROOT / "models", triton_models=args.embedders)
    manager.up(settings, only=["triton"], log=lambda *_: None)
    results = {}
    try:
        for name in args.embedders:
            embedder = TritonEmbedder(settings.triton_url, name)
            results[name] = {"model": embedder.name} | separation(tracks, embedder.embed)
            print(name, results[name], flush=True)
            embedder.close()
    finally:
        manager.down(settings)
    by_identity = defaultdict(lambda: defaultdict(int))
    for t in tracks:
        by_identity[t.identity][t.camera_id] += 1
    save(args.out, {"evaluation": "reid_crops", "machine": machine(), "detector": args.detector, "sampling_fps": args.fps,
                    "embed_every": 2, "in_sample": True, "tracks": len(tracks),
                    "crops": int(sum(len(t.crops) for t in tracks)),
                    "tracks_per_identity": {k: dict(v) for k, v in sorted(by_identity.items())}, "embedders": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
