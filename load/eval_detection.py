"""Scores the default detector (models/motion_detector, the exact code and parameters Triton serves) against the
hand-annotated boxes in load/ground_truth.json: precision and recall at IoU 0.5, per video and class, class-aware
and class-agnostic. Frames are fed in order at the pipeline's sampling rate (the detector keeps per-camera state).

    .venv/bin/python load/eval_detection.py --out load/results/detection.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

from load._harness import VIDEOS, machine  # noqa: E402
from app.inprocess import motion_detector  # noqa: E402
from vigil.sampling import Sampler  # noqa: E402
from vigil.detections import box_iou  # noqa: E402

CLASS_IDS = {"person": 0, "car": 2}
GROUND_TRUTH = Path(__file__).resolve().parent / "ground_truth.json"


def match(pred_boxes, pred_classes, gt_boxes, gt_classes, gt_ignore, iou_threshold, class_aware):
    """Greedy matching by IoU (highest first). Returns (tp, fp, fn); predictions on ignore boxes count for nothing."""
    tp = fp = 0
    matched = np.zeros(len(gt_boxes), bool)
    iou = box_iou(np.asarray(pred_boxes, np.float32).reshape(-1, 4), np.asarray(gt_boxes, np.float32).reshape(-1, 4))
    for p in np.argsort(-iou.max(1) if iou.size else np.zeros(len(pred_boxes))):
        candidates = [g for g in np.argsort(-iou[p]) if iou[p, g] >= iou_threshold and not matched[g]
                      and (not class_aware or gt_classes[g] == pred_classes[p])] if iou.size else []
        if candidates:
            g = candidates[0]
            matched[g] = True
            if not gt_ignore[g]:
                tp += 1
        else:
            fp += 1
    fn = int(((~matched) & (~np.asarray(gt_ignore, bool))).sum())
    return tp, fp, fn


def evaluate(video: str, spec: dict, fps: float, iou_threshold: float) -> dict:
    detector = motion_detector()
    sampler = Sampler(fps)
    annotated = {int(k): v for k, v in spec["frames"].items()}
    counts = {key: {"tp": 0, "fp": 0, "fn": 0} for key in ["all", "all_class_agnostic", *CLASS_IDS]}
    scored = []
    with av.open(str(VIDEOS / video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if not sampler.take(frame.time):
                if index in annotated:
                    raise SystemExit(f"{video}: annotated frame {index} is not on the {fps} fps sampling grid")
                continue
            boxes, _, classes = detector.process(video, frame.to_ndarray(format="rgb24"))
            if index not in annotated:
                continue
            gt = annotated[index]
            gt_boxes = [g["xyxy"] for g in gt]
            gt_classes = [CLASS_IDS[g["class"]] for g in gt]
            gt_ignore = [bool(g.get("ignore")) for g in gt]
            scored.append(index)
            for key, aware in (("all", True), ("all_class_agnostic", False)):
                tp, fp, fn = match(boxes, classes, gt_boxes, gt_classes, gt_ignore, iou_threshold, aware)
                for name, value in (("tp", tp), ("fp", fp), ("fn", fn)):
                    counts[key][name] += value
            for name, class_id in CLASS_IDS.items():
                keep_p = classes == class_id
                keep_g = [c == class_id for c in gt_classes]
                tp, fp, fn = match(boxes[keep_p], classes[keep_p], [b for b, k in zip(gt_boxes, keep_g) if k],
                                   [class_id] * sum(keep_g), [i for i, k in zip(gt_ignore, keep_g) if k], iou_threshold, True)
                for key, value in (("tp", tp), ("fp", fp), ("fn", fn)):
                    counts[name][key] += value
    for value in counts.values():
        value["precision"] = round(value["tp"] / (value["tp"] + value["fp"]), 3) if value["tp"] + value["fp"] else None
        value["recall"] = round(value["tp"] / (value["tp"] + value["fn"]), 3) if value["tp"] + value["fn"] else None
    return {"frames_scored": len(scored), "metrics": counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=5.0, help="sampling rate, as in the pipeline")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    truth = json.loads(GROUND_TRUTH.read_text())
    iou_threshold = truth.get("iou_threshold", 0.5)
    per_video = {video: evaluate(video, spec, args.fps, iou_threshold) for video, spec in truth["videos"].items()}
    total = {"tp": 0, "fp": 0, "fn": 0}
    for result in per_video.values():
        for key in total:
            total[key] += result["metrics"]["all"][key]
    total["precision"] = round(total["tp"] / max(total["tp"] + total["fp"], 1), 3)
    total["recall"] = round(total["tp"] / max(total["tp"] + total["fn"], 1), 3)
    result = {"evaluation": "detection", "detector": "motion_detector", "iou_threshold": iou_threshold,
              "sampling_fps": args.fps, "machine": machine(), "overall_class_aware": total, "videos": per_video}
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
