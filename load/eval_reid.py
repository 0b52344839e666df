"""Cross-camera re-identification measured on real footage with known identities (vigil/reid_scenario.py): three
camera views cut from the person video stream through ingest → infer (Triton detector + embedder) → tracks.v1 →
the PyFlink re-ID job → events.v1 → ClickHouse, once per embedder, each on its own private embedded stack.

Order: the colour-histogram baseline runs first; the learned embedder is then trained self-supervised
(`services/reid/train.py`) on that run's stored tracks (no identity labels: the trainer only knows which crops belong
to one track) and the scenario runs again with it. Reports per embedder: match precision and recall against the
identity links the construction implies, IDF1 of the global ids (py-motmetrics, over every detected box of a real
person), a precision/recall sweep over the similarity threshold (the job's matching code replayed on the stored
summaries), and the latency from the later track's end to its match on events.v1.

    .venv/bin/python load/eval_reid.py --out load/results/reid.json            # real time (~9 min)
    .venv/bin/python load/eval_reid.py --out /tmp/reid.json --pace fast      # video clock, no latency figures
    .venv/bin/python load/eval_reid.py --out load/results/reid.json --ship   # also install the trained model here
    .venv/bin/python load/eval_reid.py --protocol heldout --out load/results/reid_heldout.json   # (~6 min)

`--protocol heldout` trains on one construction and scores on constructions training never saw (other people,
segments, crops, mirroring, colour, blur, scale and sampling rate), in two folds: see load/reid_heldout.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import numpy as np  # noqa: E402

from jobs.reid.matching import IdentityState, MatchConfig, Summary, match  # noqa: E402
from app import reid_scenario  # noqa: E402
from vigil.config import REPO_ROOT, Settings  # noqa: E402
from vigil.store.client import connect  # noqa: E402

SWEEP = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def run_reid(settings: Settings, embedder: str, work: Path, pace: str = "native", clock: str = "wall",
             fps: float = 5.0, min_similarity: float = 0.7, job_warmup_s: float = 25.0, settle_s: float = 40.0) -> dict:
    """Stream the scenario through the pipeline on a running stack, with `embedder` in infer."""
    from load._harness import run_job_pipeline

    paths = reid_scenario.build(settings.data_dir.parent / "reid-clips" if pace == "fast" else work / "clips")
    camera_file = reid_scenario.camera_config(paths, fps=fps, pace=pace, clock=clock)
    return run_job_pipeline(settings, camera_file, work, "jobs.reid", "ReidMatch",
                            {"reid_model": embedder, "reid_min_similarity": min_similarity, "track_idle_ms": 2000},
                            settle_s=settle_s, job_warmup_s=job_warmup_s)


def _tracks(client, first_capture_ms: dict) -> dict:
    """(camera, track) → {summary, identity, global_id} for every summarised track."""
    heights = {(c, t): h for c, t, h in client.query(
        """SELECT camera_id, tid, median(y2b - y1b) FROM detections FINAL
           ARRAY JOIN track_id AS tid, y1 AS y1b, y2 AS y2b WHERE tid >= 0 GROUP BY camera_id, tid""").result_rows}
    globals_ = {(c, t): g for c, t, g in client.query("SELECT camera_id, track_id, global_id FROM tracks_global").result_rows}
    tracks = {}
    for row in client.query(
            """SELECT camera_id, track_id, class_id, toUnixTimestamp64Milli(first_seen), toUnixTimestamp64Milli(last_seen),
                      final, sequence, embedding, embedder, embedding_samples FROM track_summaries FINAL""").result_rows:
        camera_id, track_id = row[0], row[1]
        if camera_id not in first_capture_ms:
            continue
        summary = Summary(camera_id, track_id, row[2], row[3], row[4], bool(row[5]), row[6], np.asarray(row[7], np.float32),
                          row[8], row[9])
        anchor = first_capture_ms[camera_id]
        tracks[(camera_id, track_id)] = {
            "summary": summary, "global_id": globals_.get((camera_id, track_id), f"{camera_id}:{track_id}"),
            "identity": reid_scenario.identity(camera_id, (row[3] - anchor) / 1000, (row[4] - anchor) / 1000,
                                               heights.get((camera_id, track_id), 0.0))}
    return tracks


def _true_links(tracks: dict) -> set:
    present: dict[str, set] = {}
    for (camera_id, _), track in tracks.items():
        if track["identity"]:
            present.setdefault(camera_id, set()).add(track["identity"])
    return {(link["from_camera"], link["to_camera"], person) for link in reid_scenario.LINKS
            for person in present.get(link["from_camera"], set()) & present.get(link["to_camera"], set())}


def _precision_recall(pairs: list[tuple], tracks: dict, truth: set) -> dict:
    correct, found = 0, set()
    for from_key, to_key in pairs:
        a, b = tracks.get(from_key, {}).get("identity"), tracks.get(to_key, {}).get("identity")
        if a is not None and a == b:
            correct += 1
            found.add((from_key[0], to_key[0], a))
    return {"matches": len(pairs), "correct": correct, "precision": round(correct / len(pairs), 3) if pairs else None,
            "true_links": len(truth), "links_found": len(found & truth),
            "recall": round(len(found & truth) / len(truth), 3) if truth else None}


def _idf1(client, tracks: dict, first_capture_ms: dict) -> dict:
    """IDF1 of global ids over every detected box of a track with a true identity (boxes are the detector's own:
    this scores identity assignment, not detection)."""
    import motmetrics as mm

    accumulator, frame_index = mm.MOTAccumulator(auto_id=False), 0
    numbers: dict = {}  # motmetrics wants numeric ids
    number = lambda name: numbers.setdefault(name, len(numbers) + 1)  # noqa: E731
    rows = client.query("""SELECT camera_id, capture_ts, track_id, x1, y1, x2, y2 FROM detections FINAL
                           WHERE camera_id IN {c:Array(String)} ORDER BY camera_id, capture_ts""",
                        parameters={"c": list(first_capture_ms)}).result_rows
    for camera_id, _, track_ids, x1, y1, x2, y2 in rows:
        gt_ids, gt_boxes, hyp_ids, hyp_boxes = [], [], [], []
        for i, track_id in enumerate(track_ids):
            track = tracks.get((camera_id, int(track_id)))
            if track is None:
                continue
            box = [x1[i], y1[i], x2[i] - x1[i], y2[i] - y1[i]]
            hyp_ids.append(number("hyp:" + track["global_id"]))
            hyp_boxes.append(box)
            if track["identity"]:
                gt_ids.append(number("gt:" + track["identity"]))
                gt_boxes.append(box)
        if not gt_ids and not hyp_ids:
            continue
        distances = mm.distances.iou_matrix(np.array(gt_boxes).reshape(-1, 4), np.array(hyp_boxes).reshape(-1, 4), max_iou=0.5)
        accumulator.update(gt_ids, hyp_ids, distances, frameid=frame_index)
        frame_index += 1
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1", "idp", "idr", "num_frames"], name="all")
    return {k: round(float(summary[k].iloc[0]), 3) for k in ("idf1", "idp", "idr")} | {"frames": frame_index}


def score_reid(settings: Settings, run: dict, clock: str) -> dict:
    client = connect(settings)
    tracks = _tracks(client, run["first_capture_ms"])
    truth = _true_links(tracks)
    stored = client.query("SELECT match_id, from_camera_id, from_track_id, to_camera_id, to_track_id, similarity "
                          "FROM reid_matches FINAL WHERE from_camera_id IN {c:Array(String)} OR to_camera_id IN {c:Array(String)}",
                          parameters={"c": list(run["first_capture_ms"])}).result_rows
    pairs = [((r[1], r[2]), (r[3], r[4])) for r in stored]
    result = {"tracks": len(tracks), "tracks_with_identity": sum(1 for t in tracks.values() if t["identity"]),
              "tracks_embedded": sum(1 for t in tracks.values() if t["summary"].embedding.size),
              "job": _precision_recall(pairs, tracks, truth), "idf1": _idf1(client, tracks, run["first_capture_ms"])}
    # latency: first arrival of each match on events.v1 minus the later of the two tracks' ends (capture time)
    if clock == "wall":
        first_arrival = {}
        for received_ms, record in run["events"]:
            first_arrival.setdefault(record["match_id"], (received_ms, record))
        latencies = []
        for received_ms, record in first_arrival.values():
            a = tracks.get((record["from_camera_id"], record["from_track_id"]))
            b = tracks.get((record["to_camera_id"], record["to_track_id"]))
            if a and b:
                latencies.append((received_ms - max(a["summary"].last_seen_ms, b["summary"].last_seen_ms)) / 1000)
        result["latency_track_end_to_match_s"] = ({"p50": round(float(np.percentile(latencies, 50)), 2),
                                                   "p95": round(float(np.percentile(latencies, 95)), 2),
                                                   "max": round(float(max(latencies)), 2), "n": len(latencies)}
                                                  if latencies else None)
    # threshold sweep: the job's matching code replayed on the stored summaries, in last-seen order, one window
    topology = reid_scenario_topology()
    summaries = sorted((t["summary"] for t in tracks.values()), key=lambda s: s.last_seen_ms)
    sweep = {}
    for threshold in SWEEP:
        replayed = match(summaries, topology, IdentityState(), MatchConfig(min_similarity=threshold))
        sweep[str(threshold)] = _precision_recall(
            [((r["from_camera_id"], r["from_track_id"]), (r["to_camera_id"], r["to_track_id"])) for r in replayed], tracks, truth)
    result["threshold_sweep"] = sweep
    result["matches"] = [dict(zip(["match_id", "from_camera", "from_track", "to_camera", "to_track", "similarity"], r))
                         | {"from_identity": tracks.get((r[1], r[2]), {}).get("identity"),
                            "to_identity": tracks.get((r[3], r[4]), {}).get("identity")} for r in stored]
    return result


def reid_scenario_topology():
    from vigil.topology import Topology

    return Topology.from_config(reid_scenario.LINKS, {v.camera_id: "hall" for v in reid_scenario.VIEWS})


def private_models(root: Path, learned_model: Path | None) -> Path:
    """A model repository for one run: the repo's models, with reid_learned's weights replaced when given."""
    repository = root / "models"
    shutil.copytree(REPO_ROOT / "models", repository, ignore=shutil.ignore_patterns("__pycache__"))
    if learned_model is not None:
        shutil.copy(learned_model, repository / "reid_learned" / "1" / "model.pt")
    return repository


def main() -> int:
    from load._harness import machine, private_settings, stack
    from services.reid.train import export, load_track_crops, train_embedder
    from vigil.kafka_io import ensure_topics

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--pace", choices=["native", "fast"], default="native")
    parser.add_argument("--steps", type=int, default=400, help="training steps of the learned embedder")
    parser.add_argument("--min-similarity", type=float, default=0.7)
    parser.add_argument("--protocol", choices=["insample", "heldout"], default="insample",
                        help="insample: the scenario through the running pipeline (default); heldout: train on one "
                        "construction, score on unseen ones (load/reid_heldout.py)")
    parser.add_argument("--embedders", nargs="*", help="heldout: which embedders (default: all it knows)")
    parser.add_argument("--ship", action="store_true", help="install the trained model as models/reid_learned/1/ in "
                        "this checkout, replacing the one set-up built")
    args = parser.parse_args()
    if args.protocol == "heldout":
        from load import reid_heldout

        started = time.monotonic()
        result = reid_heldout.run(REPO_ROOT / ".vigil" / "reid-heldout", steps=args.steps,
                                  min_similarity=args.min_similarity, embedders=args.embedders)
        result |= {"evaluation": "reid", "machine": machine(), "run_s": round(time.monotonic() - started, 1)}
        save(args.out, result, shown={fold: {name: {c: {k: s[k] for k in ("precision", "recall", "idf1", "margin")}
                                                    for c, s in e["scores"].items()}
                                             for name, e in f["embedders"].items()}
                                      for fold, f in result["folds"].items()})
        return 0
    clock = "wall" if args.pace == "native" else "video"
    results, trained = {}, None
    for embedder in ("reid_color", "reid_learned", "reid_pretrained"):
        settings = private_settings()
        settings = Settings(**{**settings.model_dump(), "model_repository": private_models(settings.data_dir, trained)})
        with stack(settings):
            ensure_topics(settings)
            started = time.monotonic()
            run = run_reid(settings, embedder, settings.data_dir / "eval", pace=args.pace, clock=clock, fps=args.fps,
                           min_similarity=args.min_similarity)
            results[embedder] = score_reid(settings, run, clock) | {"run_s": round(time.monotonic() - started, 1)}
            print(embedder, json.dumps({k: v for k, v in results[embedder].items() if k != "matches"}), flush=True)
            if trained is None:  # train the learned embedder on this run's tracks (no identity labels)
                started = time.monotonic()
                crops = load_track_crops(settings, "2000-01-01 00:00:00", "2100-01-01 00:00:00", class_id=0)
                model, history = train_embedder(crops, steps=args.steps)
                training = {"tracks": len(crops), "crops": int(sum(len(c) for c in crops.values())), "steps": args.steps,
                            "final_loss": round(float(np.mean(history[-20:])), 3),
                            "seconds": round(time.monotonic() - started, 1)}
                trained = export(model, settings.data_dir / "trained" / "1", {**training, "source": "load/eval_reid.py"})
                print("trained", json.dumps(training), flush=True)
    result = {"evaluation": "reid", "machine": machine(), "sampling_fps": args.fps, "pace": args.pace,
              "min_similarity": args.min_similarity, "scenario": {
                  "views": [v.__dict__ for v in reid_scenario.VIEWS], "links": reid_scenario.LINKS,
                  "visits": reid_scenario.VISITS}, "training": training, "embedders": results}
    save(args.out, result, shown={name: {k: r[k] for k in ("job", "idf1") if k in r} for name, r in results.items()})
    if args.ship:
        target = REPO_ROOT / "models" / "reid_learned" / "1"
        shutil.copy(trained, target / "model.pt")
        shutil.copy(trained.parent / "metadata.json", target / "metadata.json")
        print(f"installed {target / 'model.pt'} in this checkout (set-up builds its own; the file is not tracked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
