"""Fine-tune the pretrained YOLOX-Nano on a camera's labelled frames, in torch, with YOLOX's own loss.

The ONNX graph runs as an `OnnxModule` (app/adapt/onnx_torch.py); its output [B, 3549, 85] holds, per grid point,
raw centre offsets and log sizes, then objectness and 80 class scores already passed through a sigmoid. The loss is
the YOLOX recipe, on those outputs: SimOTA assignment (candidate points inside a box or near its centre, a cost of
class error plus 3 x -log IoU, a dynamic top-k per box from its best IoUs), IoU loss on the assigned boxes, binary
cross-entropy of objectness on every point (points inside ignore regions are left out) and of the class on the
assigned points, with the IoU as soft target. Augmentation: flips, scale and shift, brightness and contrast.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from app.adapt.onnx_torch import OnnxModule
from app.adapt.pseudo_labels import LabelledFrame
from app.inprocess import load_model_module

log = logging.getLogger("vigil.adapt")
INPUT = 416


# the grid points of the model's output, from the model's own code (the decoding Triton serves)
GRID, GRID_STRIDES = (torch.from_numpy(a) for a in load_model_module("yolox_nano").yolox_grid(INPUT))


@dataclass
class FinetuneConfig:
    epochs: int = 6
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 5e-4
    flip_horizontal: bool = True
    flip_vertical: bool = True  # fixed overhead cameras see traffic in both directions
    scale: tuple[float, float] = (0.75, 1.25)
    seed: int = 7
    threads: int = 2
    max_minutes: float | None = None  # a wall-clock cap makes the result depend on the machine's load: none by default


def letterbox_yolox(rgb: np.ndarray, xyxy: np.ndarray, ignore: np.ndarray, scale: float = 1.0,
                    shift: tuple[float, float] = (0.0, 0.0)):
    """The detector's own pre-processing (BGR 0..255, top-left letterbox, pad 114), with an extra scale and shift for
    augmentation; boxes follow the image."""
    h, w = rgb.shape[:2]
    r = min(INPUT / h, INPUT / w) * scale
    matrix = np.array([[r, 0, shift[0]], [0, r, shift[1]]], np.float32)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    image = cv2.warpAffine(bgr, matrix, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))

    def move(boxes):
        boxes = boxes.reshape(-1, 4) * r + np.array([shift[0], shift[1], shift[0], shift[1]], np.float32)
        return np.clip(boxes, 0, INPUT)

    return image, move(xyxy), move(ignore)


def augment(frame: LabelledFrame, config: FinetuneConfig, rng: random.Random):
    """One training sample: (3x416x416 float32 tensor, boxes, classes, ignore boxes) in input pixels."""
    scale = rng.uniform(*config.scale)
    h, w = frame.rgb.shape[:2]
    r = min(INPUT / h, INPUT / w) * scale
    free_x, free_y = INPUT - w * r, INPUT - h * r
    shift = (rng.uniform(min(0, free_x), max(0, free_x)), rng.uniform(min(0, free_y), max(0, free_y)))
    image, boxes, ignore = letterbox_yolox(frame.rgb, frame.xyxy, frame.ignore, scale, shift)
    classes = frame.class_id.copy()
    if config.flip_horizontal and rng.random() < 0.5:
        image = image[:, ::-1]
        boxes = np.stack([INPUT - boxes[:, 2], boxes[:, 1], INPUT - boxes[:, 0], boxes[:, 3]], 1)
        ignore = np.stack([INPUT - ignore[:, 2], ignore[:, 1], INPUT - ignore[:, 0], ignore[:, 3]], 1)
    if config.flip_vertical and rng.random() < 0.5:
        image = image[::-1]
        boxes = np.stack([boxes[:, 0], INPUT - boxes[:, 3], boxes[:, 2], INPUT - boxes[:, 1]], 1)
        ignore = np.stack([ignore[:, 0], INPUT - ignore[:, 3], ignore[:, 2], INPUT - ignore[:, 1]], 1)
    image = image.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
    image = np.clip(image, 0, 255)
    # boxes cut to a sliver by the shift are dropped
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = area > 64
    return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(boxes[keep]).float(),
            torch.from_numpy(classes[keep]).long(), torch.from_numpy(ignore).float())


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes (n, 4) x (m, 4)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def decode(output: torch.Tensor) -> torch.Tensor:
    """Raw output (..., 3549, 85) → predicted xyxy boxes in input pixels."""
    xy = (output[..., :2] + GRID) * GRID_STRIDES[:, None]
    wh = torch.exp(output[..., 2:4].clamp(max=10)) * GRID_STRIDES[:, None]
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def yolox_loss(output: torch.Tensor, targets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """YOLOX loss over a batch; `targets` per image: (boxes xyxy, COCO classes, ignore boxes)."""
    boxes_pred = decode(output)
    obj, cls = output[..., 4].clamp(1e-6, 1 - 1e-6), output[..., 5:].clamp(1e-6, 1 - 1e-6)
    centres = (GRID + 0.5) * GRID_STRIDES[:, None]
    loss_box = loss_cls = output.new_zeros(())
    obj_target = torch.zeros_like(obj)
    obj_weight = torch.ones_like(obj)
    num_fg = 0
    for b, (gt, labels, ignore) in enumerate(targets):
        if len(ignore):
            inside = ((centres[None] > ignore[:, None, :2]) & (centres[None] < ignore[:, None, 2:])).all(-1).any(0)
            obj_weight[b, inside] = 0.0
        if not len(gt):
            continue
        in_box = ((centres[None] > gt[:, None, :2]) & (centres[None] < gt[:, None, 2:])).all(-1)  # (G, A)
        gt_centre = (gt[:, :2] + gt[:, 2:]) / 2
        radius = 2.5 * GRID_STRIDES[None, :, None]
        in_centre = ((centres[None] - gt_centre[:, None]).abs() < radius).all(-1)
        candidates = (in_box | in_centre).any(0)
        if not candidates.any():
            continue
        with torch.no_grad():
            ious = _iou(gt, boxes_pred[b, candidates])  # (G, C)
            score = (cls[b, candidates][None] * obj[b, candidates, None][None]).sqrt()  # (1, C, 80)
            onehot = F.one_hot(labels, 80).float()[:, None]  # (G, 1, 80)
            cls_cost = F.binary_cross_entropy(score.expand(len(gt), -1, -1), onehot.expand(-1, score.shape[1], -1),
                                              reduction="none").sum(-1)
            both = (in_box & in_centre)[:, candidates]
            cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~both)
            matching = torch.zeros_like(cost)
            k = torch.clamp(torch.topk(ious, min(10, ious.shape[1]), dim=1).values.sum(1).int(), min=1)
            for g in range(len(gt)):
                matching[g, torch.topk(cost[g], int(k[g]), largest=False).indices] = 1.0
            shared = matching.sum(0) > 1
            if shared.any():
                matching[:, shared] = 0.0
                matching[cost[:, shared].argmin(0), shared.nonzero().reshape(-1)] = 1.0
            fg = matching.sum(0) > 0
            matched_gt = matching[:, fg].argmax(0)
        index = candidates.nonzero().reshape(-1)[fg]
        num_fg += len(index)
        pred = boxes_pred[b, index]
        iou = torch.diag(_iou(pred, gt[matched_gt]))
        loss_box = loss_box + (1 - iou ** 2).sum()
        soft = F.one_hot(labels[matched_gt], 80).float() * iou.detach().clamp(min=0)[:, None]
        loss_cls = loss_cls + F.binary_cross_entropy(cls[b, index], soft, reduction="sum")
        obj_target[b, index] = 1.0
        obj_weight[b, index] = 1.0
    loss_obj = F.binary_cross_entropy(obj, obj_target, weight=obj_weight, reduction="sum")
    n = max(num_fg, 1)
    return (5.0 * loss_box + loss_obj + loss_cls) / n, {"fg": num_fg}


def finetune(onnx_path, train: list[LabelledFrame], config: FinetuneConfig | None = None,
             progress=None) -> tuple[OnnxModule, dict]:
    """Fine-tune the model at `onnx_path` on `train`; returns the module (export with `.export(path)`) and stats."""
    config = config or FinetuneConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    torch.set_num_threads(config.threads)
    model = OnnxModule(onnx_path)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=total, pct_start=0.15)
    started, step, losses = time.monotonic(), 0, []
    for epoch in range(config.epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        epoch_loss = []
        for start in range(0, len(order), config.batch_size):
            samples = [augment(train[i], config, rng) for i in order[start:start + config.batch_size]]
            images = torch.stack([s[0] for s in samples])
            loss, _ = yolox_loss(model(images), [s[1:] for s in samples])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            schedule.step()
            step += 1
            epoch_loss.append(float(loss.detach()))
            if config.max_minutes and (time.monotonic() - started) / 60 > config.max_minutes:
                break
        losses.append(round(float(np.mean(epoch_loss)), 4))
        if progress:
            progress(f"epoch {epoch + 1}/{config.epochs}: loss {losses[-1]:.3f} ({time.monotonic() - started:.0f} s)")
        if config.max_minutes and (time.monotonic() - started) / 60 > config.max_minutes:
            log.warning("fine-tune stopped at its time limit (%.1f min) after %d steps", config.max_minutes, step)
            break
    model.eval()
    return model, {"steps": step, "epochs_loss": losses, "seconds": round(time.monotonic() - started, 1),
                   "train_frames": len(train), "train_boxes": int(sum(len(f.xyxy) for f in train))}
