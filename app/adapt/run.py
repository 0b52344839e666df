"""`vigil detector-adapt`: a camera's frames → pseudo-labels (reviewed labels first) → fine-tune → held-out
validation → a new version of the camera's model in the repository → a running Triton switched to it.

Frames come either from the running system (the camera's frames in the frame store between --since and --until,
found through ClickHouse's `frames` table) or from a video file (set-up adapts the sample car camera from the first
14 s of its footage this way). The split is by time, never random (neighbouring frames are near-copies): the last
`holdout` share of the period, after a gap, is validation; the fine-tune is published only if it beats the model it
starts from on those frames.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from app.adapt import repository as repo
from app.adapt.finetune import FinetuneConfig, finetune
from app.adapt.pseudo_labels import (
    ALL_CLASSES,
    PERSON,
    VEHICLES,
    LabelledFrame,
    PseudoLabeller,
    candidates,
    merge_reviewed,
)
from app.inprocess import motion_detector, pretrained_detector
from vigil.detections import box_iou
from vigil.sampling import Sampler

log = logging.getLogger("vigil.adapt")


@dataclass
class AdaptRequest:
    camera_id: str
    base: str = "yolox_nano"
    name: str = ""  # the adapted model is <base>__<name>; default: the camera id
    holdout: float = 0.2
    gap_s: float = 1.0
    fps: float = 5.0  # frames per second taken from a video file
    lanes: list = field(default_factory=list)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    min_improvement: float = 0.0  # validation F1 must beat the starting model by more than this
    refit: bool = True  # once validated, train again on the whole period and publish that
    replay_threshold: float = 0.5  # replay frames: the starting model's boxes this sure are labels, weaker ones ignored


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return round(self.tp / (self.tp + self.fp), 3) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return round(self.tp / (self.tp + self.fn), 3) if self.tp + self.fn else None

    @property
    def f1(self) -> float:
        return round(2 * self.tp / (2 * self.tp + self.fp + self.fn), 3) if self.tp + self.fp + self.fn else 1.0

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def match(pred_xyxy, pred_classes, gt_xyxy, gt_classes, gt_ignore=None, iou_threshold: float = 0.5,
          class_aware: bool = True) -> tuple[int, int, int]:
    """Greedy one-to-one matching, best IoU first → (tp, fp, fn). A prediction matched to an ignore box counts for
    nothing; so does one lying mostly (IoU ≥ threshold) on an unmatched ignore box."""
    pred_xyxy = np.asarray(pred_xyxy, np.float32).reshape(-1, 4)
    gt_xyxy = np.asarray(gt_xyxy, np.float32).reshape(-1, 4)
    gt_ignore = np.zeros(len(gt_xyxy), bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
    iou = box_iou(pred_xyxy, gt_xyxy) if len(pred_xyxy) and len(gt_xyxy) else np.zeros((len(pred_xyxy), len(gt_xyxy)))
    if class_aware and iou.size:
        iou = np.where(np.asarray(pred_classes)[:, None] == np.asarray(gt_classes)[None], iou, 0.0)
    matched, tp, fp = np.zeros(len(gt_xyxy), bool), 0, 0
    order = np.argsort(-iou.max(1)) if iou.size else range(len(pred_xyxy))
    for p in order:
        candidates = np.where((iou[p] >= iou_threshold) & ~matched)[0] if iou.size else []
        if len(candidates):
            g = candidates[np.argmax(iou[p, candidates])]
            matched[g] = True
            tp += not gt_ignore[g]
        else:
            fp += 1
    return tp, fp, int((~matched & ~gt_ignore).sum())


def score_frames(detector, frames: list[LabelledFrame], iou_threshold: float = 0.5) -> Score:
    """A detector against labelled frames, class-aware; boxes on the frames' ignore regions count for nothing."""
    total = Score()
    for frame in frames:
        xyxy, _, classes = detector.process("", frame.rgb)
        if len(xyxy) and len(frame.ignore):  # predictions on ignore regions are neither right nor wrong
            on_ignore = box_iou(xyxy, frame.ignore).max(1) >= iou_threshold
            xyxy, classes = xyxy[~on_ignore], classes[~on_ignore]
        tp, fp, fn = match(xyxy, classes, frame.xyxy, frame.class_id, None, iou_threshold)
        total.tp, total.fp, total.fn = total.tp + tp, total.fp + fp, total.fn + fn
    return total


def video_frames(path: Path, fps: float, start_s: float = 0.0, end_s: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(capture ms from the file's start, RGB) at `fps`, from start_s (inclusive) to end_s (exclusive)."""
    sampler = Sampler(fps)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is None or not sampler.take(frame.time):
                continue
            if frame.time < start_s:
                continue
            if end_s is not None and frame.time >= end_s:
                break
            yield round(frame.time * 1000), frame.to_ndarray(format="rgb24")


def split_by_time(frames: list[LabelledFrame], holdout: float, gap_s: float) -> tuple[list, list]:
    """Train on the earlier part, validate on the later: the cut is where the last `holdout` share of the labelled
    boxes begins (so validation holds objects even when traffic is sparse), with `gap_s` left out before it."""
    if not frames:
        return [], []
    boxes = np.cumsum([len(f.xyxy) for f in frames])
    if boxes[-1] == 0:
        cut = frames[-1].capture_ts_ms - holdout * (frames[-1].capture_ts_ms - frames[0].capture_ts_ms)
    else:
        cut = frames[int(np.searchsorted(boxes, (1 - holdout) * boxes[-1]))].capture_ts_ms
    train = [f for f in frames if f.capture_ts_ms < cut - gap_s * 1000]
    validation = [f for f in frames if f.capture_ts_ms >= cut]
    return train, validation


def adapt(request: AdaptRequest, frames: Iterable[tuple[int, np.ndarray]], repository: Path,
          reviewed: dict[int, LabelledFrame] | None = None, progress=print, period: dict | None = None,
          replay: Iterable[tuple[int, np.ndarray]] = ()) -> dict:
    """The whole loop on one camera's frames (in capture order). Returns the report; publishes only on improvement.
    `replay`: frames from elsewhere (e.g. footage with people), labelled by the starting model itself and mixed into
    training, so the fine-tune keeps the classes the camera's own frames never show (no catastrophic forgetting)."""
    started = time.monotonic()
    base_version = str(repo.versions(repository, request.base)[-1]) if repo.versions(repository, request.base) else "1"
    teacher = pretrained_detector(request.base, base_version, repository, classes=ALL_CLASSES)
    labeller = PseudoLabeller(teacher, motion_detector(), request.lanes)
    for ts_ms, rgb in frames:
        labeller.observe(request.camera_id, ts_ms, rgb)
    labelled = merge_reviewed(labeller.labels(), reviewed or {})
    train, validation = split_by_time(labelled, request.holdout, request.gap_s)
    replayed = replay_labels(teacher, replay, request.replay_threshold)
    report = {"camera_id": request.camera_id, "base": f"{request.base}:{base_version}", "period": period or {},
              "pseudo_labels": labeller.summary(), "reviewed_frames": len(reviewed or {}),
              "train_frames": len(train), "validation_frames": len(validation), "replay_frames": len(replayed),
              "replay_boxes": int(sum(len(f.xyxy) for f in replayed)),
              "train_boxes": int(sum(len(f.xyxy) for f in train)),
              "validation_boxes": int(sum(len(f.xyxy) for f in validation))}
    if report["train_boxes"] == 0:
        raise repo.RepositoryError(f"{request.camera_id}: no object was labelled in the training part of the period "
                                   f"({len(train)} frames); choose a period in which traffic passes")
    progress(f"{len(labelled)} frames labelled ({report['pseudo_labels']['boxes']} pseudo-label boxes, "
             f"{len(reviewed or {})} reviewed frames); training on {len(train)}, validating on {len(validation)}")
    base_path = repository / request.base / base_version / "model.onnx"
    module, stats = finetune(base_path, train + replayed, request.finetune, progress=progress)
    report["finetune"] = stats
    scratch = repository / f".adapt-{request.camera_id}.onnx"
    module.export(scratch)
    try:
        before = score_frames(pretrained_detector(request.base, base_version, repository), validation)
        after = score_frames(pretrained_detector(request.base, base_version, repository, onnx_path=scratch), validation)
    finally:
        scratch.unlink(missing_ok=True)
    report["validation"] = {"before": before.as_dict(), "after": after.as_dict(),
                            "split": f"by time: the frames holding the last {request.holdout:.0%} of the labelled boxes, "
                                     f"after a {request.gap_s:.0f} s gap"}
    progress(f"validation F1 (class-aware, IoU 0.5) on held-out frames: {before.f1:.3f} before → {after.f1:.3f} after")
    if after.f1 <= before.f1 + request.min_improvement:
        report["published"] = None
        report["reason"] = "the fine-tune did not beat the starting model on the held-out frames; nothing published"
        return report
    if request.refit and validation:
        # the recipe is validated; the model published learns from the whole period (the validation frames too)
        progress(f"refitting on all {len(labelled)} labelled frames")
        module, report["refit"] = finetune(base_path, labelled + replayed, request.finetune, progress=progress)
    sha = hashlib.sha256(base_path.resolve().read_bytes()).hexdigest()
    model, version = repo.publish(repository, request.base, request.name or request.camera_id, module, {
        **report, "base_sha256": sha, "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
    repo.set_policy(repository, model, None)
    report["published"] = {"model": model, "version": version}
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def replay_labels(teacher, frames: Iterable[tuple[int, np.ndarray]], threshold: float) -> list[LabelledFrame]:
    """Replay frames labelled by the starting model: its kept classes at `threshold` or more are labels, its weaker
    candidates of any class ignore regions (neither taught as object nor as background)."""
    keep = np.array([PERSON, *VEHICLES])
    out = []
    for ts_ms, rgb in frames:
        xyxy, scores, classes = candidates(teacher, rgb, 0.15)
        sure = np.isin(classes, keep) & (scores >= threshold)
        out.append(LabelledFrame(ts_ms, rgb, xyxy[sure], classes[sure], xyxy[~sure], source="replay"))
    return out


def store_frames(settings, camera_id: str, since_ms: int, until_ms: int) -> Iterator[tuple[int, np.ndarray]]:
    """A camera's stored frames in a period, in capture order, read from the frame store (via ClickHouse `frames`)."""
    from app.review import load_frames
    from vigil.framestore import FrameNotFound, open_frame_store
    from vigil.store.client import connect

    rows = load_frames(connect(settings), camera_id, since_ms, until_ms)
    store = open_frame_store(settings.frame_store_uri)
    for row in rows:
        try:
            data = store.get(row.uri)
        except FrameNotFound:
            continue  # expired from the frame store
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is not None:
            yield row.ts_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def reviewed_frames(settings, labels_root: Path, camera_id: str, since_ms: int | None = None,
                    until_ms: int | None = None) -> dict[int, LabelledFrame]:
    """Frames an operator corrected (`vigil review-import`), with their pixels, by capture time."""
    from vigil.framestore import FrameNotFound, open_frame_store
    from vigil.labels import LabelStore

    store, frames = open_frame_store(settings.frame_store_uri), {}
    for labelled in LabelStore(labels_root).frames(camera_id, since_ms, until_ms):
        try:
            bgr = cv2.imdecode(np.frombuffer(store.get(labelled.uri), np.uint8), cv2.IMREAD_COLOR)
        except FrameNotFound:
            log.warning("reviewed frame %s is no longer in the frame store; skipped", labelled.uri)
            continue
        if bgr is None:
            continue
        frames[labelled.capture_ts_ms] = LabelledFrame(labelled.capture_ts_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                                       labelled.xyxy, labelled.class_id, source="review")
    return frames
