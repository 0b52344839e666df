"""Scores every detector of the model repository (the motion heuristic, the pretrained YOLOX-Nano and NanoDet-m, and
every per-camera fine-tune <base>__<name> found there), each with the exact code and config.pbtxt parameters Triton
serves, against hand-annotated boxes:

- load/ground_truth.json: sampled frames of the two sample videos;
- load/stationary_ground_truth.json: held frames of the "stopped" scenario clip (app/scenarios.py), where two cars
  stand still for 10 s: does the detector still see what stops?

Frames are fed in order at the pipeline's sampling rate (--fps, 5), from the start of each video: the motion detector
keeps per-camera state, so its figures on a frame depend on everything before it. Neural detectors are stateless and
only run on the annotated frames.

Per detector and video: precision and recall at IoU 0.5 at the model's configured threshold (per class, overall
class-aware, class-agnostic) with the greedy one-to-one matcher of detector adaptation (app/adapt/run.py `match`), and
AP@0.5 per class, mAP@0.5 (mean over the classes with truth) and class-agnostic AP@0.5 from pycocotools' COCOeval
(detections taken at a confidence threshold of 0.01; ignore boxes passed as iscrowd, so nothing on them counts).

Held-out honesty: an adapted model is never scored on frames of the period it was adapted on. Its metadata.json names
the camera; the period comes from it when recorded, else it is set-up's (car-detection.mp4, 0-14 s). On that video an
adapted model is scored only on annotated frames at least 1 s after its period ends (t >= 15 s), and every detector is
scored on that same held-out subset too, so the comparison is like for like.

    .venv/bin/python load/eval_detection.py --out load/results/detection.json
    .venv/bin/python load/eval_detection.py --out /tmp/d.json --detectors motion_detector,yolox_nano
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import numpy as np

from app.adapt import repository as repo
from app.adapt.run import match
from app.inprocess import NEURAL_DETECTORS, detector, model_parameters
from load._harness import VIDEOS, machine
from load._results import save
from vigil.config import REPO_ROOT
from vigil.detector_models import is_adapted
from vigil.sampling import Sampler

CLASS_IDS = {"person": 0, "car": 2}  # COCO ids (0-based, as the detectors output them)
HERE = Path(__file__).resolve().parent
GROUND_TRUTH = HERE / "ground_truth.json"
STATIONARY_TRUTH = HERE / "stationary_ground_truth.json"
MODELS = REPO_ROOT / "models"
CAR_VIDEO = "car-detection.mp4"
STATIONARY = "stopped-scenario"  # the key the stopped clip's figures are reported under
AP_CONF_THRESHOLD = 0.01
HOLDOUT_GAP_S = 1.0  # frames this close after an adaptation period are not held out either
# Which footage a camera id of an adapted model's metadata is (the demo's car cameras are all the car video).
CAMERA_VIDEOS = {"car-park": CAR_VIDEO, "car-park-stopped": CAR_VIDEO, "car-park-wrong-way": CAR_VIDEO,
                 "room": "one-by-one-person-detection.mp4"}
# What `make setup` adapts the sample car camera on, when an adapted model's metadata does not record its period.
SETUP_ADAPTATION = {"video": CAR_VIDEO, "start_s": 0.0, "end_s": 14.0}
HOLD_PIXEL_TOLERANCE = 6.0  # mean |difference| (0-255) allowed between a held clip frame and its source frame


# ----------------------------------------------------------------------------------------------------- scoring (pure)

@dataclass
class Frame:
    """One annotated frame: truth, and the detector's output at its configured threshold and at the AP threshold."""
    key: str
    gt_xyxy: np.ndarray
    gt_classes: np.ndarray
    gt_ignore: np.ndarray
    pred: tuple  # (xyxy (n, 4), scores (n,), classes (n,)) as served
    pred_ap: tuple | None = None  # the same at conf 0.01 (None: the served output, e.g. the motion detector's)
    meta: dict = field(default_factory=dict)


def truth_frame(key: str, boxes: list[dict], pred: tuple, pred_ap: tuple | None = None, **meta) -> Frame:
    return Frame(key, np.asarray([b["xyxy"] for b in boxes], np.float32).reshape(-1, 4),
                 np.asarray([CLASS_IDS[b["class"]] for b in boxes], np.int32),
                 np.asarray([bool(b.get("ignore")) for b in boxes], bool), _as_pred(pred),
                 None if pred_ap is None else _as_pred(pred_ap), meta)


def _as_pred(pred) -> tuple:
    xyxy, scores, classes = pred
    return (np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1),
            np.asarray(classes, np.int32).reshape(-1))


def _pr(tp: int, fp: int, fn: int) -> dict:
    return {"tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None}


def precision_recall(frames: list[Frame], iou_threshold: float = 0.5) -> dict:
    """Counts and P/R at the configured threshold: overall class-aware ("all"; a box of a class without truth, e.g. a
    truck, is a false positive), class-agnostic, and per class (only that class's boxes and truth)."""
    sums = {key: [0, 0, 0] for key in ("all", "class_agnostic", *CLASS_IDS)}

    def add(key, counts):
        sums[key] = [a + b for a, b in zip(sums[key], counts)]

    for f in frames:
        xyxy, _, classes = f.pred
        add("all", match(xyxy, classes, f.gt_xyxy, f.gt_classes, f.gt_ignore, iou_threshold, True))
        add("class_agnostic", match(xyxy, classes, f.gt_xyxy, f.gt_classes, f.gt_ignore, iou_threshold, False))
        for name, class_id in CLASS_IDS.items():
            p, g = classes == class_id, f.gt_classes == class_id
            add(name, match(xyxy[p], classes[p], f.gt_xyxy[g], f.gt_classes[g], f.gt_ignore[g], iou_threshold, True))
    return {key: _pr(*value) for key, value in sums.items()}


def coco_ap(frames: list[Frame], iou_threshold: float = 0.5) -> dict:
    """AP at one IoU threshold with pycocotools' COCOeval (101-point interpolated precision, up to 100 detections per
    frame, every box size): per class, their mean (mAP, over the classes that have truth in these frames) and
    class-agnostic. Ignore boxes go in as iscrowd=1: a detection on one is neither right nor wrong."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [{"id": class_id + 1, "name": name} for name, class_id in CLASS_IDS.items()]  # COCO category ids
    images, annotations, detections = [], [], []
    for image_id, f in enumerate(frames, 1):
        images.append({"id": image_id, "file_name": f.key})
        for box, class_id, ignore in zip(f.gt_xyxy.tolist(), f.gt_classes.tolist(), f.gt_ignore.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": class_id + 1,
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": int(ignore),
                                "ignore": int(ignore)})
        xyxy, scores, classes = f.pred_ap if f.pred_ap is not None else f.pred
        for box, score, class_id in zip(xyxy.tolist(), scores.tolist(), classes.tolist()):
            detections.append({"image_id": image_id, "category_id": int(class_id) + 1, "score": float(score),
                               "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    has_truth = {name: bool(any(((f.gt_classes == c) & ~f.gt_ignore).any() for f in frames))
                 for name, c in CLASS_IDS.items()}
    result = {"per_class": {}, "map": None, "class_agnostic": None, "detections": len(detections)}
    if not detections:  # loadRes cannot take an empty list: no detection = AP 0 wherever there is truth
        result["per_class"] = {name: 0.0 if has_truth[name] else None for name in CLASS_IDS}
        result["map"] = 0.0 if any(has_truth.values()) else None
        result["class_agnostic"] = result["map"]
        return result
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        dt = gt.loadRes(detections)
        for use_cats in (1, 0):
            evaluation = COCOeval(gt, dt, "bbox")
            evaluation.params.iouThrs = np.array([iou_threshold])
            evaluation.params.useCats = use_cats
            evaluation.evaluate()
            evaluation.accumulate()
            precision = evaluation.eval["precision"][0, :, :, 0, -1]  # [recall points, categories], all areas, 100 dets
            aps = [round(float(p[p > -1].mean()), 4) if (p > -1).any() else None for p in precision.T]
            if use_cats:
                by_id = dict(zip(evaluation.params.catIds, aps))
                result["per_class"] = {name: by_id.get(c + 1) for name, c in CLASS_IDS.items()}
            else:
                result["class_agnostic"] = aps[0]
    values = [v for v in result["per_class"].values() if v is not None]
    result["map"] = round(float(np.mean(values)), 4) if values else None
    return result


def score(frames: list[Frame], iou_threshold: float = 0.5) -> dict:
    """Everything one frame set gives: frames, truth boxes, P/R (configured threshold) and AP@iou (low threshold)."""
    ap = coco_ap(frames, iou_threshold)
    return {"frames": len(frames),
            "truth_boxes": int(sum(int((~f.gt_ignore).sum()) for f in frames)),
            "ignore_boxes": int(sum(int(f.gt_ignore.sum()) for f in frames)),
            "pr": precision_recall(frames, iou_threshold),
            f"ap{round(iou_threshold * 100)}": ap["per_class"], f"map{round(iou_threshold * 100)}": ap["map"],
            f"ap{round(iou_threshold * 100)}_class_agnostic": ap["class_agnostic"]}


# ------------------------------------------------------------------------------------------------ held-out periods

def adaptation_periods(model: str) -> dict:
    """Which footage an adapted model's newest version was adapted on, from its metadata.json."""
    versions = repo.versions(MODELS, model)
    meta = repo.metadata(MODELS, model, versions[-1]) if versions else {}
    camera = meta.get("camera_id")
    recorded = meta.get("period") or {k: meta[k] for k in ("video", "start_s", "end_s") if k in meta}
    out = {"version": versions[-1] if versions else None, "camera_id": camera, "created": meta.get("created"),
           "base": meta.get("base"), "pseudo_labelled_frames": (meta.get("pseudo_labels") or {}).get("frames"),
           "train_frames": meta.get("train_frames"), "validation_frames": meta.get("validation_frames"),
           "adaptation_validation": meta.get("validation")}
    replay = recorded.get("replay")
    if recorded.get("end_s") is not None:
        period = {"video": Path(recorded.get("video") or CAMERA_VIDEOS.get(camera, CAR_VIDEO)).name,
                  "start_s": float(recorded.get("start_s") or 0.0), "end_s": float(recorded["end_s"])}
        out["period_source"] = "metadata.json"
    else:
        period = dict(SETUP_ADAPTATION)
        out["period_source"] = (f"assumed: metadata.json records camera {camera!r} but no period; set-up adapts the "
                                f"sample car camera on {CAR_VIDEO} 0-14 s")
        if camera not in CAMERA_VIDEOS:
            out["period_source"] += " (camera not one of the sample cameras: the same period is assumed)"
    frames = out["pseudo_labelled_frames"]
    if frames:
        out["check"] = (f"{frames} pseudo-labelled frames = {frames / 12.5:.1f} s at {CAR_VIDEO}'s 12.5 fps"
                        if period["video"] == CAR_VIDEO else f"{frames} pseudo-labelled frames")
    out["adapted_on"] = [period]
    if replay:  # frames mixed into training from other footage are not held out either
        out["adapted_on"].append({"video": Path(replay["video"]).name, "start_s": float(replay.get("start_s") or 0.0),
                                  "end_s": float(replay["end_s"]) if replay.get("end_s") is not None else 1e9})
    return out


def seen(periods: list[dict], video: str, t: float) -> bool:
    """Is time t of video within (or within HOLDOUT_GAP_S after) one of the adaptation periods?"""
    return any(p["video"] == video and p["start_s"] - HOLDOUT_GAP_S <= t < p["end_s"] + HOLDOUT_GAP_S for p in periods)


# ------------------------------------------------------------------------------------------------------- running

def _decode_sampled(path: Path, fps: float, annotated: set[int], last: int | None = None):
    """(index, time, rgb) of every frame on the sampling grid, in order, up to frame `last`."""
    sampler = Sampler(fps)
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if last is not None and index > last:
                return
            if not sampler.take(frame.time):
                if index in annotated:
                    raise SystemExit(f"{path.name}: annotated frame {index} is not on the {fps} fps sampling grid")
                continue
            yield index, float(frame.time), frame.to_ndarray(format="rgb24")


def run_detectors(names: list[str], path: Path, camera_id: str, fps: float, annotated: set[int]) -> tuple[dict, dict]:
    """Feed the video to every detector → ({name: {index: (pred, pred_ap)}}, {index: time}). The motion detector sees
    every sampled frame up to the last annotated one, in order; neural detectors only the annotated frames, twice
    (configured threshold, and conf 0.01 for AP)."""
    motion = detector("motion_detector") if "motion_detector" in names else None
    neural = {n: (detector(n), detector(n, conf_threshold=AP_CONF_THRESHOLD)) for n in names if n != "motion_detector"}
    out, times = {n: {} for n in names}, {}
    for index, t, rgb in _decode_sampled(path, fps, annotated, max(annotated)):
        if motion is not None:
            pred = motion.process(camera_id, rgb)
            if index in annotated:
                out["motion_detector"][index] = (pred, None)  # its scores are its own; no threshold to lower
        if index in annotated:
            times[index] = t
            for name, (served, low) in neural.items():
                out[name][index] = (served.process(camera_id, rgb), low.process(camera_id, rgb))
    missing = annotated - set(times)
    if missing:
        raise SystemExit(f"{path.name}: annotated frames {sorted(missing)} are not in the video")
    return out, times


def stopped_clip(stationary: dict, truth: dict, work: Path) -> Path:
    """Build the scenario clips as the demo does and check the stationary truth still describes the stopped one."""
    from app.scenarios import CAR_VIDEO as SOURCE
    from app.scenarios import build

    scenario = {s.name: s for s in build(work)}[stationary["scenario"]]
    fps, src = stationary["clip_fps"], stationary["source"]
    (start, end), = scenario.injected["stopped_vehicle"]
    hold = stationary["hold"]
    # clip frames start*fps .. end*fps are source frame start*fps (the held copies, then the original resuming)
    if (round(start * fps), round(end * fps)) != (hold["first_clip_frame"], hold["last_clip_frame"]) or \
            round(start * fps) != src["frame"]:
        raise SystemExit(f"app/scenarios.py now holds the stopped clip over {start}-{end} s; "
                         f"{STATIONARY_TRUTH.name} describes frames {hold}: re-derive it")
    if any(stationary["frames"][k] != truth["videos"][src["video"]]["frames"][str(src["frame"])]
           for k in stationary["frames"]):
        raise SystemExit(f"{STATIONARY_TRUTH.name}: boxes differ from the annotation of {src['video']} frame {src['frame']}")
    with av.open(str(SOURCE)) as container:
        reference = next(f for i, f in enumerate(container.decode(video=0)) if i == src["frame"]).to_ndarray(format="rgb24")
    wanted = {int(k) for k in stationary["frames"]}
    with av.open(str(scenario.path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                diff = float(np.abs(frame.to_ndarray(format="rgb24").astype(np.int16) - reference).mean())
                if diff > HOLD_PIXEL_TOLERANCE:
                    raise SystemExit(f"stopped clip frame {index} is not source frame {src['frame']} (mean diff {diff:.1f})")
    return scenario.path


def discover() -> list[str]:
    return ["motion_detector", *[n for n in NEURAL_DETECTORS if repo.versions(MODELS, n)],
            *repo.adapted_models(MODELS, list(NEURAL_DETECTORS))]


def configured_threshold(name: str):
    if name == "motion_detector":
        return "none (its boxes, scored by its own class confidence)"
    params = model_parameters(name, MODELS)
    return float(params.get("conf_threshold", 0.3))


def evaluate(names: list[str], fps: float) -> dict:
    truth = json.loads(GROUND_TRUTH.read_text())
    stationary = json.loads(STATIONARY_TRUTH.read_text())
    iou = truth.get("iou_threshold", 0.5)
    adapted = {n: adaptation_periods(n) for n in names if is_adapted(n)}
    every_period = [p for a in adapted.values() for p in a["adapted_on"]]
    sets: dict = {}  # video -> {"all": [...], "held_out": [...]} frame indices, "times"
    per_detector = {n: {"configured_threshold": configured_threshold(n), "videos": {}} for n in names}
    frames_of: dict = {n: {} for n in names}  # name -> video -> [Frame]

    sources = [(video, VIDEOS / video, spec, Path(video).stem, {}) for video, spec in truth["videos"].items()]
    with tempfile.TemporaryDirectory(prefix="vigil-eval-detection-") as work:
        clip = stopped_clip(stationary, truth, Path(work))
        sources.append((STATIONARY, clip, stationary, "car-park-stopped", {"source": stationary["source"]}))
        for video, path, spec, camera, extra in sources:
            annotated = {int(k): v for k, v in spec["frames"].items()}
            started = time.monotonic()
            outputs, times = run_detectors(names, path, camera, fps, set(annotated))
            print(f"{video}: {len(annotated)} annotated frames, {len(names)} detectors, "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr)
            # the footage time each frame shows (the stopped clip shows its source frame)
            shown = ({i: extra["source"]["t_s"] for i in annotated} if extra else times)
            shows_video = extra["source"]["video"] if extra else video
            held = sorted(i for i in annotated if not seen(every_period, shows_video, shown[i]))
            sets[video] = {"file": str(path.name) if not extra else "stopped.mp4 (app/scenarios.py build())",
                           "all": sorted(annotated), "held_out": held,
                           "held_out_rule": (f"frames showing {shows_video} at t >= "
                                             f"{max([p['end_s'] for p in every_period if p['video'] == shows_video], default=0) + HOLDOUT_GAP_S:g} s"
                                             if any(p["video"] == shows_video for p in every_period) else "every frame"),
                           "seconds_shown": {str(i): round(shown[i], 2) for i in sorted(annotated)}, **extra}
            for name in names:
                frames_of[name][video] = [truth_frame(f"{video}#{i}", annotated[i], *outputs[name][i]) for i in sorted(annotated)]
    for name in names:
        periods = adapted.get(name, {}).get("adapted_on", [])
        for video, frames in frames_of[name].items():
            shows_video = sets[video].get("source", {}).get("video", video)
            seconds = sets[video]["seconds_shown"]
            own_seen = [f for f in frames if seen(periods, shows_video, seconds[f.key.rsplit("#", 1)[1]])]
            held = [f for f in frames if int(f.key.rsplit("#", 1)[1]) in set(sets[video]["held_out"])]
            entry = {"held_out": score(held, iou) if held else None}
            if own_seen:
                entry["all"] = {"not_scored": f"{len(own_seen)} of the {len(frames)} annotated frames are in or within "
                                              f"{HOLDOUT_GAP_S:g} s of its adaptation period"}
            else:
                entry["all"] = score(frames, iou)
            if video == STATIONARY:
                entry["per_frame"] = [{"clip_frame": int(f.key.rsplit("#", 1)[1]),
                                       "held_for_s": round((int(f.key.rsplit("#", 1)[1]) - stationary["hold"]["first_clip_frame"]) / stationary["clip_fps"], 1),
                                       **{k: v for k, v in precision_recall([f], iou)["car"].items() if k in ("tp", "fp", "fn")}}
                                      for f in frames]
            per_detector[name]["videos"][video] = entry
        annotated_videos = [v for v in frames_of[name] if v != STATIONARY]
        pooled_all = [f for v in annotated_videos for f in frames_of[name][v]]
        pooled_held = [f for v in annotated_videos for f in frames_of[name][v]
                       if int(f.key.rsplit("#", 1)[1]) in set(sets[v]["held_out"])]
        clean = all("not_scored" not in per_detector[name]["videos"][v]["all"] for v in annotated_videos)
        per_detector[name]["both_videos"] = {"all": score(pooled_all, iou) if clean else {"not_scored": "includes its adaptation frames"},
                                             "held_out": score(pooled_held, iou)}
    return {"iou_threshold": iou, "truth": {"annotated": truth["description"], "stationary": stationary["description"]},
            "adapted_models": adapted, "frame_sets": sets, "detectors": per_detector}


# --------------------------------------------------------------------------------------------------------- table

def _f(value) -> str:
    return "  -  " if value is None else f"{value:.2f}"


def _pr_cell(metrics: dict | None, key: str) -> str:
    if not metrics or "pr" not in metrics:
        return "   n/a   "
    m = metrics["pr"][key]
    return f"{_f(m['precision'])}/{_f(m['recall'])}"


def table(result: dict) -> str:
    sets, det = result["frame_sets"], result["detectors"]
    videos = [v for v in sets if v != STATIONARY]
    n_all = sum(len(sets[v]["all"]) for v in videos)
    n_held = sum(len(sets[v]["held_out"]) for v in videos)
    car_held = len(sets[CAR_VIDEO]["held_out"]) if CAR_VIDEO in sets else 0
    st = sets[STATIONARY]
    held_for = ", ".join(f"{p['held_for_s']:g}" for p in next(iter(det.values()))["videos"][STATIONARY]["per_frame"])
    lines = [
        "P/R = precision/recall at IoU 0.5 at the model's configured threshold; mAP = COCOeval mAP@0.5 (dets at 0.01).",
        (f"[all] both videos pooled, all {n_all} annotated frames (person figures come from the person video, car "
         f"figures from the car video).  [held-out car] {CAR_VIDEO} at "
         f"{sets[CAR_VIDEO]['held_out_rule'].split('at ')[-1]} ({car_held} frames), after every adapted model's "
         f"adaptation period.  * = adapted model: its first columns cover only the {n_held} frames outside its "
         "adaptation (and replay) periods."),
        (f"[stationary] stopped clip, {len(st['all'])} held frames ({held_for} s "
        f"into the hold) showing {st['source']['video']} frame {st['source']['frame']} (t = {st['source']['t_s']} s: "
        f"{'held out for every adapted model' if st['held_out'] == st['all'] else 'NOT held out for some adapted model'}); "
        "R 0s->10s = car recall on the first / last held frame."),
        "",
        (f"{'detector':24} {'person P/R':>11} {'car P/R':>11} {'agnost. P/R':>11} {'mAP@.5':>6} | "
        f"{'held-out car P/R':>16} {'AP car':>6} | {'stat. car P/R':>13} {'AP car':>6} {'R 0s->10s':>9}"),
    ]
    for name, d in det.items():
        full = d["both_videos"]["all"]
        star = "*" if "not_scored" in full else " "
        main = d["both_videos"]["held_out"] if star == "*" else full
        held = d["videos"].get(CAR_VIDEO, {}).get("held_out")
        stat = d["videos"][STATIONARY]
        sm = stat["all"] if "pr" in stat["all"] else stat["held_out"]
        per_frame = stat["per_frame"]
        r0 = per_frame[0]["tp"] / max(per_frame[0]["tp"] + per_frame[0]["fn"], 1)
        r1 = per_frame[-1]["tp"] / max(per_frame[-1]["tp"] + per_frame[-1]["fn"], 1)
        lines.append(
            f"{(name + star):24} {_pr_cell(main, 'person'):>11} {_pr_cell(main, 'car'):>11} "
            f"{_pr_cell(main, 'class_agnostic'):>11} {_f(main.get('map50')):>6} | "
            f"{_pr_cell(held, 'car'):>16} {_f((held or {}).get('ap50', {}).get('car')):>6} | "
            f"{_pr_cell(sm, 'car'):>13} {_f((sm or {}).get('ap50', {}).get('car')):>6} {f'{r0:.2f}->{r1:.2f}':>9}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=5.0, help="sampling rate, as in the pipeline")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--detectors", help="comma-separated Triton model names (default: every detector in models/)")
    args = parser.parse_args()
    found = discover()
    names = [n.strip() for n in args.detectors.split(",") if n.strip()] if args.detectors else found
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"no detector {unknown} in {MODELS}; there are {found}")
    started = time.monotonic()
    result = {"evaluation": "detection", "detectors_evaluated": names, "sampling_fps": args.fps,
              "ap_conf_threshold": AP_CONF_THRESHOLD, "holdout_gap_s": HOLDOUT_GAP_S, "machine": machine(),
              **evaluate(names, args.fps)}
    result["seconds"] = round(time.monotonic() - started, 1)
    result["table"] = table(result).splitlines()
    save(args.out, result, shown={"out": str(args.out), "adapted_models": {
        n: {k: a[k] for k in ("version", "camera_id", "adapted_on", "period_source", "check") if k in a}
        for n, a in result["adapted_models"].items()}})
    print("\n" + table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
