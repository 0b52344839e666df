"""Frame sampling at a target rate on the stream's own clock: the one rule ingest, set-up and the benchmarks share."""

from __future__ import annotations


class Sampler:
    """Keeps a frame when its stream time reaches the next sampling instant (target fps, never above the source)."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.next_t: float | None = None

    def take(self, t: float) -> bool:
        if self.next_t is None or t >= self.next_t - 1e-6:
            # stay on the grid unless we fell more than a period behind (a gap in the stream)
            self.next_t = (self.next_t + self.period) if self.next_t is not None and t - self.next_t < self.period else t + self.period
            return True
        return False
