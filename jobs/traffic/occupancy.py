"""Detection zones as virtual induction loops: occupancy, time headway and gap.

Occupancy is the share of *observed* time the zone holds at least one vehicle (its bottom-centre anchor inside the
polygon). Each frame's state holds until the next frame; two frames further apart than `max_frame_gap_ms` leave the
time between them unobserved (neither occupied nor empty), so a camera that stalls does not read as an empty road.

Headway is the time between successive vehicles entering the zone; gap is the follower's entry minus the leader's
exit (0 when the leader is still inside: a zone longer than the spacing of the vehicles). As with a loop, times are
those of the frames where a vehicle is first seen inside and first seen no longer inside, so both are late by the
same half frame on average and the gap is not biased. A track enters a zone once: a box flickering at the zone's
edge does not make new vehicles. After an unobserved stretch the next vehicle has no leader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vigil.geometry import DetectionZone

MAX_FRAME_GAP_MS = 1000


@dataclass(frozen=True)
class Held:
    """The zone's state from one frame to the next: [start_ms, end_ms) occupied or empty."""

    start_ms: int
    end_ms: int
    occupied: bool


@dataclass(frozen=True)
class Entry:
    """A vehicle entered the zone, and its headway and gap to the one before (None: no known leader)."""

    track_id: int
    ts_ms: int
    headway_s: float | None
    gap_s: float | None


@dataclass
class _Presence:
    track_id: int
    entry_ms: int
    last_inside_ms: int
    exit_ms: int | None = None  # the first frame it was no longer inside; None while inside


class ZoneOccupancy:
    """One detection zone over a camera's frames. Feed it every frame's vehicle anchors in time order."""

    def __init__(self, zone: DetectionZone, max_frame_gap_ms: int = MAX_FRAME_GAP_MS):
        self.zone, self.max_frame_gap_ms = zone, max_frame_gap_ms
        self.last_ts_ms: int | None = None
        self.occupied = False  # at the last frame
        self.presences: dict[int, _Presence] = {}  # tracks that entered, until forgotten
        self.leader: _Presence | None = None  # the last vehicle to enter

    def observe(self, ts_ms: int, track_ids: np.ndarray, anchors: np.ndarray) -> tuple[Held | None, list[Entry]]:
        """One frame's vehicles: (n,) track ids (< 0: untracked, they occupy but do not enter) and (n, 2) anchors →
        the zone's state since the previous frame (None: unobserved, or the first frame) and the entries."""
        if self.last_ts_ms is not None and ts_ms <= self.last_ts_ms:  # a replayed or late frame
            return None, []
        inside = self.zone.contains(anchors)
        held = None
        if self.last_ts_ms is not None:
            if ts_ms - self.last_ts_ms <= self.max_frame_gap_ms:
                held = Held(self.last_ts_ms, ts_ms, self.occupied)
            else:
                self.leader = None  # whoever entered during the gap is unknown
        self.last_ts_ms, self.occupied = ts_ms, bool(inside.any())
        inside_ids = set(np.asarray(track_ids).reshape(-1)[inside].tolist())
        for presence in self.presences.values():
            if presence.track_id in inside_ids:
                presence.last_inside_ms, presence.exit_ms = ts_ms, None
            elif presence.exit_ms is None:
                presence.exit_ms = ts_ms
        entries = []
        for track_id in sorted(i for i in inside_ids if i >= 0 and i not in self.presences):
            presence = self.presences[track_id] = _Presence(track_id, ts_ms, ts_ms)
            headway_s = gap_s = None
            if self.leader is not None:
                headway_s = (ts_ms - self.leader.entry_ms) / 1000
                leader_exit_ms = ts_ms if self.leader.exit_ms is None else self.leader.exit_ms
                gap_s = max(0, ts_ms - leader_exit_ms) / 1000
            entries.append(Entry(track_id, ts_ms, headway_s, gap_s))
            self.leader = presence
        return held, entries

    def forget(self, unseen_since_ms: int) -> None:
        """Drop tracks last inside before `unseen_since_ms` (the leader is kept for the next headway)."""
        for track_id in [t for t, p in self.presences.items() if p.last_inside_ms < unseen_since_ms]:
            del self.presences[track_id]


@dataclass
class OccupancyTally:
    """A zone's (or a lane's zones') measurements over one bin."""

    observed_ms: int = 0
    occupied_ms: int = 0
    headways_s: list[float] = field(default_factory=list)
    gaps_s: list[float] = field(default_factory=list)

    def add_held(self, start_ms: int, end_ms: int, occupied: bool) -> None:
        self.observed_ms += end_ms - start_ms
        self.occupied_ms += (end_ms - start_ms) if occupied else 0

    def add_entry(self, entry: Entry) -> None:
        if entry.headway_s is not None:
            self.headways_s.append(entry.headway_s)
        if entry.gap_s is not None:
            self.gaps_s.append(entry.gap_s)

    @property
    def occupancy_pct(self) -> float | None:
        """Occupied share of the observed time, in percent; None when nothing was observed."""
        return 100 * self.occupied_ms / self.observed_ms if self.observed_ms else None


def split_by_bins(start_ms: int, end_ms: int, bin_ms: int) -> list[tuple[int, int, int]]:
    """[start_ms, end_ms) cut at bin boundaries → [(bin_start_ms, start_ms, end_ms), ...]."""
    pieces = []
    while start_ms < end_ms:
        bin_start = start_ms - start_ms % bin_ms
        piece_end = min(end_ms, bin_start + bin_ms)
        pieces.append((bin_start, start_ms, piece_end))
        start_ms = piece_end
    return pieces
