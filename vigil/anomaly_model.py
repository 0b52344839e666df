"""A small per-camera autoencoder over scene feature vectors. Scores a window by reconstruction error (mean squared
error of the standardised features) and names the feature cells that contributed most."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class SceneAutoencoder(nn.Module):
    def __init__(self, dim: int, hidden: int = 32, code: int = 6):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, code))
        self.decoder = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.decoder(self.encoder(x))


@dataclass
class ScoringModel:
    """A trained autoencoder with its standardisation, ready to score (batches of) feature vectors."""

    net: SceneAutoencoder
    mean: np.ndarray
    std: np.ndarray
    feature_names: list[str]

    def errors(self, vectors: np.ndarray) -> np.ndarray:
        """Per-feature squared reconstruction errors, (n, dim)."""
        z = (np.asarray(vectors, dtype=np.float32).reshape(-1, len(self.mean)) - self.mean) / self.std
        with torch.no_grad():
            recon = self.net(torch.from_numpy(z.astype(np.float32))).numpy()
        return (recon - z) ** 2

    def score(self, vectors: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        errors = self.errors(vectors)
        top = [[self.feature_names[i] for i in np.argsort(-row)[:3]] for row in errors]
        return errors.mean(1), top


def train(vectors: np.ndarray, feature_names: list[str], epochs: int = 300, seed: int = 0) -> ScoringModel:
    """Fit on windows of normal traffic (full batch, Adam). Deterministic for a given seed."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x = np.asarray(vectors, dtype=np.float32)
    mean = x.mean(0)
    std = x.std(0) + 0.05  # features that never vary in normal traffic must not explode when they do
    z = torch.from_numpy((x - mean) / std)
    net = SceneAutoencoder(x.shape[1])
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = ((net(z) - z) ** 2).mean()
        loss.backward()
        optimiser.step()
    net.eval()
    return ScoringModel(net, mean, std, list(feature_names))
