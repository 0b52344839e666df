"""A lane's traffic state per bin, named like the levels of DATEX II's traffic status (trafficFlowStatus), so the
DATEX II publication carries them as they are.

The state compares the bin's mean speed with the lane's free-flow speed (speed ratio = mean / free flow):

| speed ratio   | state        |
| ------------- | ------------ |
| >= 0.75       | `freeFlow`   |
| >= 0.55       | `heavy`      |
| >= 0.35       | `slow`       |
| >= 0.10       | `queuing`    |
| < 0.10        | `stationary` |

A lane whose detection zone is occupied >= 50 % of the bin while no vehicle crossed its count lines is `stationary`
(the queue stands on the loop), whatever the speeds. Otherwise, without a mean speed (no passages, no calibration)
or without a free-flow speed the state is `unknown`.

The free-flow speed is the lane's configured `free_flow_kmh`, else learned: the 85th percentile of the speeds of
vehicles that passed while the lane's occupancy was below 15 % (uncongested), once at least 20 such passages were
seen (the last 500 are kept, so it follows seasons and road works). A lane without a detection zone has no
occupancy to tell free flow from congestion, so it learns nothing: configure its `free_flow_kmh`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum

import numpy as np

# (lowest speed ratio, state), highest first
SPEED_RATIO_LEVELS = ((0.75, "freeFlow"), (0.55, "heavy"), (0.35, "slow"), (0.10, "queuing"))
STATIONARY_OCCUPANCY_PCT = 50.0
FREE_FLOW_MAX_OCCUPANCY_PCT = 15.0
FREE_FLOW_MIN_PASSAGES = 20
FREE_FLOW_KEPT_PASSAGES = 500
FREE_FLOW_PERCENTILE = 85


class TrafficState(str, Enum):
    FREE_FLOW = "freeFlow"
    HEAVY = "heavy"
    SLOW = "slow"
    QUEUING = "queuing"
    STATIONARY = "stationary"
    UNKNOWN = "unknown"


def classify(mean_speed_kmh: float | None, free_flow_kmh: float | None, occupancy_pct: float | None,
             passages: int) -> TrafficState:
    """The state of one lane in one bin (see the module docstring for the levels)."""
    if passages == 0 and occupancy_pct is not None and occupancy_pct >= STATIONARY_OCCUPANCY_PCT:
        return TrafficState.STATIONARY
    if mean_speed_kmh is None or free_flow_kmh is None:
        return TrafficState.UNKNOWN
    ratio = mean_speed_kmh / free_flow_kmh
    for lowest, state in SPEED_RATIO_LEVELS:
        if ratio >= lowest:
            return TrafficState(state)
    return TrafficState.STATIONARY


class FreeFlowSpeed:
    """A lane's free-flow speed: configured, or learned from passages in uncongested bins."""

    def __init__(self, configured_kmh: float | None = None):
        self.configured_kmh = configured_kmh
        self.speeds_kmh: deque[float] = deque(maxlen=FREE_FLOW_KEPT_PASSAGES)

    def learn(self, speeds_kmh: Iterable[float], occupancy_pct: float | None) -> None:
        """A bin's passage speeds, kept only when the bin's occupancy shows the lane was not congested."""
        if occupancy_pct is not None and occupancy_pct < FREE_FLOW_MAX_OCCUPANCY_PCT:
            self.speeds_kmh.extend(speeds_kmh)

    @property
    def kmh(self) -> float | None:
        if self.configured_kmh is not None:
            return self.configured_kmh
        if len(self.speeds_kmh) < FREE_FLOW_MIN_PASSAGES:
            return None
        return float(np.percentile(np.asarray(self.speeds_kmh), FREE_FLOW_PERCENTILE))
