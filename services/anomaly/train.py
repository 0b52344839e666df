"""Train a camera's autoencoder from a period of normal traffic stored in ClickHouse, validate it on held-out
windows, and write a versioned artifact to the registry (optionally approving it, which the running job picks up).

    vigil anomaly-train --camera car-park --since "2026-11-22 00:00:00" --until "2026-11-22 06:00:00" --approve
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import numpy as np

from vigil.anomaly_model import train
from vigil.config import Settings
from vigil.detections import DetectionFrame, Detections
from vigil.features import FEATURES, windowed_features
from vigil.model_registry import AnomalySettings, Registry
from vigil.store.client import connect


def load_frames(settings: Settings, camera_id: str, since: str, until: str) -> list[DetectionFrame]:
    rows = connect(settings).query(
        "SELECT toUnixTimestamp64Milli(d.capture_ts), f.width, f.height, d.x1, d.y1, d.x2, d.y2, d.class_id, "
        "d.confidence, d.track_id "
        "FROM (SELECT * FROM detections FINAL WHERE camera_id = {c:String} AND capture_ts >= {since:DateTime64(3)} "
        "AND capture_ts < {until:DateTime64(3)}) AS d "
        "INNER JOIN (SELECT frame_id, width, height FROM frames FINAL WHERE camera_id = {c:String}) AS f USING frame_id "
        "ORDER BY d.capture_ts", parameters={"c": camera_id, "since": since, "until": until}).result_rows
    return [DetectionFrame(camera_id, ts, width, height,
                           Detections(np.stack([x1, y1, x2, y2], 1), confidence, classes, tracks))
            for ts, width, height, x1, y1, x2, y2, classes, confidence, tracks in rows]


def train_camera(settings: AnomalySettings, camera_id: str, since: str, until: str, holdout: float = 0.2,
                 epochs: int = 300, approve: bool = False) -> dict:
    frames = load_frames(settings, camera_id, since, until)
    since_ms, until_ms = (int(datetime.datetime.fromisoformat(t).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
                          for t in (since, until))
    # only windows wholly inside the period: a window cut by its edges holds a fraction of the traffic
    windows = [w for w in windowed_features(frames, settings.anomaly_window_ms) if w[0] >= since_ms and w[1] <= until_ms]
    if len(windows) < 20:
        raise ValueError(f"camera {camera_id}: only {len(windows)} windows of detections between {since} and {until}; "
                         "need at least 20 (widen the period)")
    vectors = np.stack([v for _, _, v in windows])
    split = int(len(vectors) * (1 - holdout))
    model = train(vectors[:split], FEATURES, epochs=epochs)
    train_errors, _ = model.score(vectors[:split])
    holdout_errors, _ = model.score(vectors[split:])
    validation = {
        "train_windows": split, "holdout_windows": len(vectors) - split,
        "train_error": {q: float(np.quantile(train_errors, p)) for q, p in (("p50", .5), ("p95", .95), ("p99", .99))},
        "holdout_error": {q: float(np.quantile(holdout_errors, p)) for q, p in (("p50", .5), ("p95", .95), ("p99", .99), ("max", 1.0))},
    }
    # A model that cannot reconstruct unseen normal traffic would flag everything: refuse to approve it. (Errors are
    # mean squared z-scores; below 0.05 a window is reconstructed to within ~0.2 standard deviations per feature.)
    validation["passed"] = validation["holdout_error"]["p95"] <= max(5 * validation["train_error"]["p95"], 0.05)
    registry = Registry(settings.registry_root)
    version = registry.save(camera_id, model, {"window_ms": settings.anomaly_window_ms, "since": since, "until": until,
                                               "validation": validation})
    if approve and validation["passed"]:
        registry.approve(camera_id, version)
    return {"camera_id": camera_id, "version": version, "approved": bool(approve and validation["passed"]),
            "registry": str(settings.registry_root), "validation": validation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil anomaly-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", required=True)
    parser.add_argument("--since", required=True, help="start of the normal period (UTC, 'YYYY-MM-DD hh:mm:ss')")
    parser.add_argument("--until", required=True)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--approve", action="store_true", help="approve the new version if it passes validation")
    args = parser.parse_args(argv)
    try:
        result = train_camera(AnomalySettings(), args.camera, args.since, args.until, args.holdout, args.epochs, args.approve)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
