"""Cross-camera matching, free of Flink: topology gating, cosine scoring, one-to-one (Hungarian) assignment and the
global identities that matches build up.

Each matched pair links a track that *left* one camera (`from`, a final summary) to a track that *entered* another
camera (`to`) within the link's transit window. A track has at most one successor and one predecessor, so matched
tracks form chains; a chain is one global identity, named after its earliest track. When a match joins a chain to an
earlier one, the later chain's identity changes and its matches are re-emitted with the new global id (same match
ids, later emission time: the ClickHouse table keeps the newest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.topology import Topology

Key = tuple[str, int]  # (camera_id, track_id)


@dataclass
class Summary:
    camera_id: str
    track_id: int
    class_id: int
    first_seen_ms: int
    last_seen_ms: int
    final: bool
    sequence: int
    embedding: np.ndarray
    embedder: str
    samples: int = 0

    @property
    def key(self) -> Key:
        return (self.camera_id, self.track_id)

    @classmethod
    def from_record(cls, r: dict) -> "Summary":
        return cls(r["camera_id"], int(r["track_id"]), int(r["class_id"]), int(r["first_seen_ms"]), int(r["last_seen_ms"]),
                   bool(r["final"]), int(r["sequence"]), np.asarray(r["embedding"], np.float32), r["embedder"],
                   int(r["embedding_samples"]))


@dataclass
class MatchConfig:
    min_similarity: float = 0.7
    min_samples: int = 4  # tracks embedded from fewer crops (glimpses, reflections) are too unreliable to match
    retention_ms: int = 3_600_000  # forget chains whose newest track is this much older than the newest summary


@dataclass
class IdentityState:
    """Per site: the chains matched so far. Small and picklable (it lives in Flink keyed state)."""

    successor: dict = field(default_factory=dict)  # Key -> Key
    predecessor: dict = field(default_factory=dict)  # Key -> Key
    matches: dict = field(default_factory=dict)  # to-Key -> ReidMatch record (its predecessor edge)
    last_seen: dict = field(default_factory=dict)  # Key -> ms, for retention
    newest_ms: int = 0

    def root(self, key: Key) -> Key:
        while key in self.predecessor:
            key = self.predecessor[key]
        return key

    def chain(self, key: Key) -> list[Key]:
        """Every track of key's identity, earliest first."""
        key, members = self.root(key), []
        while key is not None:
            members.append(key)
            key = self.successor.get(key)
        return members

    def global_id(self, key: Key) -> str:
        camera_id, track_id = self.root(key)
        return f"{camera_id}:{track_id}"

    def prune(self, retention_ms: int) -> None:
        """Drop whole chains whose newest track left more than retention_ms ago."""
        cutoff = self.newest_ms - retention_ms
        for key in [k for k, ts in self.last_seen.items() if ts < cutoff]:
            if key not in self.last_seen:
                continue
            members = self.chain(key)
            if max(self.last_seen.get(m, 0) for m in members) < cutoff:
                for m in members:
                    self.successor.pop(m, None)
                    self.predecessor.pop(m, None)
                    self.matches.pop(m, None)
                    self.last_seen.pop(m, None)


def candidates(summaries: list[Summary], topology: Topology, state: IdentityState, config: MatchConfig):
    """Gated candidate pairs `(from, to, similarity)`: different cameras joined by a link, transit within its bounds,
    same class, both embedded from at least `min_samples` crops, `from` has ended, neither end already taken, similarity at least the minimum."""
    latest: dict[Key, Summary] = {}
    for s in summaries:
        if s.key not in latest or (s.final, s.sequence) > (latest[s.key].final, latest[s.key].sequence):
            latest[s.key] = s
    tracks = [s for s in latest.values() if s.embedding.size and s.samples >= config.min_samples]
    pairs = []
    for a in tracks:
        if not a.final or a.key in state.successor:
            continue
        for b in tracks:
            if b.camera_id == a.camera_id or b.key in state.predecessor or b.class_id != a.class_id:
                continue
            link = topology.link(a.camera_id, b.camera_id)
            if link is None or a.embedding.shape != b.embedding.shape or a.embedder != b.embedder:
                continue
            transit_s = (b.first_seen_ms - a.last_seen_ms) / 1000
            if not link.min_transit_s <= transit_s <= link.max_transit_s:
                continue
            if state.root(a.key) == state.root(b.key):
                continue
            similarity = float(a.embedding @ b.embedding)
            if similarity >= config.min_similarity:
                pairs.append((a, b, similarity))
    return pairs


def assign(pairs):
    """One-to-one assignment maximising total similarity (Hungarian); returns the chosen pairs."""
    if not pairs:
        return []
    froms = sorted({a.key for a, _, _ in pairs})
    tos = sorted({b.key for _, b, _ in pairs})
    row, col = {k: i for i, k in enumerate(froms)}, {k: i for i, k in enumerate(tos)}
    cost = np.full((len(froms), len(tos)), 1e6)
    chosen = {}
    for a, b, similarity in pairs:
        cost[row[a.key], col[b.key]] = 1.0 - similarity
        chosen[(a.key, b.key)] = (a, b, similarity)
    rows, cols = linear_sum_assignment(cost)
    return [chosen[(froms[r], tos[c])] for r, c in zip(rows, cols) if cost[r, c] < 1e6]


def match(summaries: list[Summary], topology: Topology, state: IdentityState, config: MatchConfig,
          now_ms: int = 0) -> list[dict]:
    """Match one window of summaries into `state`; returns ReidMatch records (new matches, plus re-emitted earlier
    matches whose global id changed). `emitted_ts_ms` is left for the sink-side encoder to stamp."""
    for s in summaries:
        state.last_seen[s.key] = max(state.last_seen.get(s.key, 0), s.last_seen_ms)
        state.newest_ms = max(state.newest_ms, s.last_seen_ms)
    out = []
    for a, b, similarity in assign(candidates(summaries, topology, state, config)):
        later_chain = state.chain(b.key)  # b has no predecessor: it heads its own chain
        state.successor[a.key], state.predecessor[b.key] = b.key, a.key
        global_id = state.global_id(a.key)
        record = dict(match_id=f"{a.camera_id}:{a.track_id}->{b.camera_id}:{b.track_id}", global_id=global_id,
                      class_id=a.class_id, from_camera_id=a.camera_id, from_track_id=a.track_id,
                      from_last_seen_ms=a.last_seen_ms, to_camera_id=b.camera_id, to_track_id=b.track_id,
                      to_first_seen_ms=b.first_seen_ms, similarity=similarity, embedder=a.embedder,
                      emitted_ts_ms=now_ms)
        state.matches[b.key] = record
        out.append(record)
        for member in later_chain[1:]:  # matches inside the joined chain now belong to the earlier identity
            earlier = state.matches[member]
            earlier.update(global_id=global_id, emitted_ts_ms=now_ms)
            out.append(dict(earlier))
    state.prune(config.retention_ms)
    return out
