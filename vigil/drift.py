"""Drift of a camera against its own baseline: what the picture and the detector's view of it looked like in a
reference period, compared with the recent past by the population stability index (PSI).

Features, all from the `DetectionBatch` records (no pixels needed): per frame the picture's `sharpness` and `contrast`
(ingest's VideoQuality figures) and the `detections` per frame; per detection its `confidence`, its `box_size` (the
square root of the box's share of the frame) and the `class_mix`. A numeric feature is binned at the baseline's
quintiles, the class mix per class; PSI = Σ (q - p) · ln(q / p) over the bins (p baseline, q recent), each share
smoothed with half a count per bin, so an empty bin in a short window costs little instead of infinity (few bins and
the smoothing keep a stable camera's PSI well under 0.25 with windows of 40 values). Common reading: < 0.1 stable,
0.1-0.25 moderate, > 0.25 a shift. Short windows make PSI noisy (two samples of one camera differ by chance), so a
feature counts as drifted only when its PSI is over the threshold *and* significant: PSI is the symmetric
Kullback-Leibler divergence, and PSI · n·m/(n+m) follows χ² with (bins - 1) degrees of freedom when nothing changed;
it must pass that distribution's 99.9th percentile.

Everything runs on capture time, so a replay judges exactly as the live stream did: the first `baseline_s` of a
camera's stream become its baseline (or a saved one is loaded), then every `check_every_s` the last `window_s` are
compared with it. A camera drifts when some feature's PSI stays above the threshold for `consecutive` checks;
it is reported once per episode and again only after it was back under the threshold.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NUMERIC = ("sharpness", "contrast", "detections", "confidence", "box_size")
FEATURES = (*NUMERIC, "class_mix")
PSEUDO_COUNT = 0.5  # added to every bin before taking shares
QUANTILES = np.linspace(0.2, 0.8, 4)  # inner bin edges: the baseline's quintiles


Z_999 = 3.090  # standard normal 99.9th percentile


def chi2_999(df: int) -> float:
    """χ²'s 99.9th percentile (Wilson-Hilferty; within 2 % for df ≥ 1)."""
    a = 2.0 / (9.0 * df)
    return df * (1 - a + Z_999 * np.sqrt(a)) ** 3


def significant(value: float, bins: int, n: float, m: float) -> bool:
    """Is a PSI this large unlikely (p < 0.001) between two samples of n and m values from one distribution?"""
    return bins > 1 and n > 0 and m > 0 and value * n * m / (n + m) > chi2_999(bins - 1)


def psi(baseline: np.ndarray, recent: np.ndarray) -> float:
    """PSI of two histograms (counts over the same bins)."""
    p = (baseline + PSEUDO_COUNT) / (baseline.sum() + PSEUDO_COUNT * len(baseline))
    q = (recent + PSEUDO_COUNT) / (recent.sum() + PSEUDO_COUNT * len(recent))
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass
class Baseline:
    """Bin edges and shares per feature, from the reference period."""

    camera_id: str
    start_ms: int
    end_ms: int
    edges: dict[str, list[float]]  # numeric feature → inner bin edges (the baseline's quintiles)
    counts: dict[str, list[float]]  # feature → counts per bin (class_mix: per class in `classes`)
    classes: list[int]
    frames: int

    @classmethod
    def build(cls, camera_id: str, samples: "Samples", start_ms: int, end_ms: int) -> "Baseline":
        edges, counts = {}, {}
        for name in NUMERIC:
            values = samples.values(name)
            inner = np.unique(np.quantile(values, QUANTILES)) if len(values) else np.array([])
            edges[name] = [float(e) for e in inner]
            counts[name] = histogram(values, edges[name]).tolist()
        classes = sorted({int(c) for c in samples.values("class_mix")})
        counts["class_mix"] = class_counts(samples.values("class_mix"), classes).tolist()
        return cls(camera_id, start_ms, end_ms, edges, counts, classes, samples.frames)

    def compare(self, samples: "Samples", min_values: int) -> tuple[dict[str, float], set[str]]:
        """PSI per feature of `samples` against this baseline (features with too few values are left out), and the
        features whose PSI is significant."""
        scores, sure = {}, set()
        for name in FEATURES:
            values = samples.values(name)
            base = np.asarray(self.counts[name] + ([0.0] if name == "class_mix" else []))
            if len(values) < min_values or base.sum() < min_values:
                continue
            recent = np.append(class_counts(values, self.classes), np.sum(~np.isin(values, self.classes))) \
                if name == "class_mix" else histogram(values, self.edges[name])
            scores[name] = psi(base, recent)
            if significant(scores[name], len(base), base.sum(), recent.sum()):
                sure.add(name)
        return scores, sure

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Baseline":
        return cls(**json.loads(path.read_text()))


def histogram(values: np.ndarray, inner_edges: list[float]) -> np.ndarray:
    return np.bincount(np.searchsorted(np.asarray(inner_edges), values, side="right"),
                       minlength=len(inner_edges) + 1).astype(float)


def class_counts(values: np.ndarray, classes: list[int]) -> np.ndarray:
    return np.array([np.sum(values == c) for c in classes], dtype=float)


@dataclass
class Samples:
    """Feature values of the frames seen, oldest first (a bounded window when `keep_ms` is set)."""

    keep_ms: int | None = None
    per_frame: deque = field(default_factory=deque)  # (ts_ms, {feature: np.ndarray})

    def add(self, ts_ms: int, sharpness: float | None, contrast: float | None, scores, boxes, classes,
            width: int, height: int) -> None:
        area = float(max(width * height, 1))
        sizes = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0, None) / area) \
            if len(boxes) else np.zeros(0)
        row = {"sharpness": np.array([] if sharpness is None else [sharpness], float),
               "contrast": np.array([] if contrast is None else [contrast], float),
               "detections": np.array([float(len(scores))]), "confidence": np.asarray(scores, float),
               "box_size": sizes, "class_mix": np.asarray(classes, float)}
        self.per_frame.append((ts_ms, row))
        if self.keep_ms is not None:
            while self.per_frame and self.per_frame[0][0] <= ts_ms - self.keep_ms:
                self.per_frame.popleft()

    @property
    def frames(self) -> int:
        return len(self.per_frame)

    def values(self, name: str) -> np.ndarray:
        parts = [row[name] for _, row in self.per_frame]
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class DriftSettings:
    baseline_s: float = 60.0
    window_s: float = 30.0
    check_every_s: float = 10.0
    threshold: float = 0.25
    consecutive: int = 2
    min_values: int = 20


@dataclass
class Verdict:
    camera_id: str
    ts_ms: int
    scores: dict[str, float]
    drifted: list[str]  # features over the threshold
    raised: bool  # this check starts a drift episode (report it)


class CameraDrift:
    """One camera: builds (or holds) its baseline, then judges the recent window every `check_every_s`."""

    def __init__(self, camera_id: str, settings: DriftSettings, baseline: Baseline | None = None):
        self.camera_id, self.settings, self.baseline = camera_id, settings, baseline
        self.reference = Samples()
        self.recent = Samples(keep_ms=int(settings.window_s * 1000))
        self.first_ms: int | None = None
        self.next_check_ms: int | None = None
        self.over = 0
        self.in_episode = False

    def observe(self, ts_ms: int, **frame) -> tuple[Baseline | None, Verdict | None]:
        """Add a frame; returns (a baseline just built, a verdict when a check was due)."""
        if self.first_ms is None:
            self.first_ms = ts_ms
        built = None
        if self.baseline is None:
            if ts_ms - self.first_ms < self.settings.baseline_s * 1000:
                self.reference.add(ts_ms, **frame)
                return None, None
            self.baseline = built = Baseline.build(self.camera_id, self.reference, self.first_ms, ts_ms)
            self.reference = Samples()
        self.recent.add(ts_ms, **frame)
        if self.next_check_ms is None:
            self.next_check_ms = ts_ms + int(self.settings.window_s * 1000)  # a full window first
        if ts_ms < self.next_check_ms:
            return built, None
        self.next_check_ms = ts_ms + int(self.settings.check_every_s * 1000)
        scores, sure = self.baseline.compare(self.recent, self.settings.min_values)
        drifted = sorted(name for name, value in scores.items() if value > self.settings.threshold and name in sure)
        self.over = self.over + 1 if drifted else 0
        raised = False
        if self.over >= self.settings.consecutive and not self.in_episode:
            self.in_episode = raised = True
        elif not drifted:
            self.in_episode = False
        return built, Verdict(self.camera_id, ts_ms, scores, drifted, raised)
