"""Incidents: the raw AnomalyEvents of one camera that belong to one real-world event, as one record with a lifecycle.

A rule fires once per track, and one stopped car can give several events: one per lane it straddles (the tracker
splits the track at the lane line), or a fresh track id after an occlusion. An `IncidentBook` holds one camera's open
incidents and folds each event into one of them:

- an event **joins** an open incident of the same kind on the camera when it shares a track with it, or names a zone
  the incident holds, or the kind is camera-wide (no tracks: autoencoder, crowding, bad video), and it starts no later
  than `merge_gap_s` after the incident's latest evidence;
- otherwise it **opens** a new incident with the deterministic id `<camera_id>:<kind>:<window_start_ms>` (`-2`, `-3`
  ... after it for another event of the kind that starts in the same millisecond: two cars stopped in one frame);
- an incident is **cleared** once none of its tracks has been seen for `clear_after_s` (track incidents: the stopped
  car drove off), or none of its events was still present for `clear_after_s` (trackless findings a rule can still
  see: the debris object was taken away), or no event joined it for `quiet_clear_s` (camera-wide incidents), measured
  in the camera's own event time (its frames), so an idle camera elsewhere holds nothing up.

Every change is a new revision (open → updated … → cleared), published in full, so a consumer that keeps the latest
revision per id has the incident's state and the table of every revision is its history. Replayed events that were
already merged change nothing (event ids are deterministic), so a restart from a checkpoint re-emits no revision.
Operators' verdicts (acknowledged / confirmed / rejected) are IncidentVerdict records from the console or the CLI,
kept beside the revisions; the job does not need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

SEVERITIES = ("low", "medium", "high", "critical")
# A kind's severity when its score just passes the threshold; one level up at twice the threshold (twice as long
# stopped, twice as many people), and one more while its tracks are still there after a minute.
BASE_SEVERITY = {"wrong_way": "high", "pedestrian": "high", "stopped_vehicle": "medium", "debris": "medium",
                 "object_left": "medium", "queue": "medium", "slow_vehicle": "low", "crowding": "low",
                 "loitering": "low", "autoencoder": "low", "camera_moved": "medium", "frozen": "medium",
                 "blur": "low", "low_contrast": "low"}


PRESENCE_EVERY_MS = 1000  # how often the rules stage tells the incident stage which tracks a camera showed


class Presence(NamedTuple):
    """The tracks a camera's frames showed since the last Presence, up to `ts_ms` (its event time), whether its
    lane rules are suspended then (`RuleState.suspended`: camera moved or frozen; the rules stage sends a Presence at
    once when that changes, ahead of the frame's events), and the ids of trackless events whose evidence the frames
    still showed (`RuleEngine.still_present`: a debris object still in the lane)."""

    camera_id: str
    ts_ms: int
    track_ids: tuple
    suspended: bool = False
    still_present: tuple = ()


class IncidentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    merge_gap_s: float = Field(30.0, gt=0, description="An event joins an open incident of its kind that shares a "
                                                       "track or zone if it starts within this of its latest evidence.")
    clear_after_s: float = Field(10.0, gt=0, description="A track incident clears when none of its tracks was seen "
                                                         "for this long.")
    quiet_clear_s: float = Field(30.0, gt=0, description="A camera-wide incident clears when no event joined it for "
                                                         "this long.")


def severity(kind: str, score: float, threshold: float, lasting_ms: int) -> str:
    level = SEVERITIES.index(BASE_SEVERITY.get(kind, "low"))
    if threshold > 0 and score >= 2 * threshold:
        level += 1
    if lasting_ms >= 60_000:
        level += 1
    return SEVERITIES[min(level, len(SEVERITIES) - 1)]


@dataclass
class OpenIncident:
    incident_id: str
    camera_id: str
    kind: str
    opened_ms: int
    updated_ms: int
    score: float
    threshold: float
    snapshot_uri: str
    clip_uri: str
    revision: int = 1
    zones: list = field(default_factory=list)
    track_ids: list = field(default_factory=list)
    event_ids: list = field(default_factory=list)
    last_seen_ms: int = 0  # latest frame time any of its tracks was seen (track incidents)

    def record(self, state: str, now_ms: int, cleared_ms: int | None = None, suspended: bool = False) -> dict:
        lasting = max(self.updated_ms, self.last_seen_ms) - self.opened_ms
        return dict(incident_id=self.incident_id, revision=self.revision, camera_id=self.camera_id, kind=self.kind,
                    state=state, severity=severity(self.kind, self.score, self.threshold, lasting),
                    zones=list(self.zones), track_ids=list(self.track_ids), event_ids=list(self.event_ids),
                    opened_ms=self.opened_ms, updated_ms=self.updated_ms, cleared_ms=cleared_ms,
                    score=float(self.score), threshold=float(self.threshold), snapshot_uri=self.snapshot_uri,
                    clip_uri=self.clip_uri, detection_suspended=suspended, emitted_ts_ms=now_ms)


@dataclass
class IncidentBook:
    """One camera's open incidents (the job keeps the book in keyed state). `uris(camera_id, incident_id)` gives
    the snapshot and clip URIs the evidence service writes."""

    settings: IncidentSettings = field(default_factory=IncidentSettings)
    open: dict = field(default_factory=dict)  # incident_id -> OpenIncident
    merged: dict = field(default_factory=dict)  # event_id -> incident_id, for events already folded in (replays)
    suspended: bool = False  # its lane rules are suspended (the latest Presence): revisions say detection_suspended

    def _match(self, event: dict) -> OpenIncident | None:
        gap_ms = self.settings.merge_gap_s * 1000
        tracks, zone = set(event.get("track_ids") or []), event.get("zone")
        for incident in self.open.values():
            if incident.kind != event["kind"] or event["camera_id"] != incident.camera_id:
                continue
            if event["window_start_ms"] > max(incident.updated_ms, incident.last_seen_ms) + gap_ms:
                continue
            shares = (tracks & set(incident.track_ids)) or (zone is not None and zone in incident.zones)
            if shares or (not tracks and not incident.track_ids):
                return incident
        return None

    def _new_id(self, event: dict) -> str:
        """`<camera>:<kind>:<window_start_ms>`; a second real-world event of the kind that starts in the same
        millisecond (two cars stopped by one collision, in two lanes) gets `-2`, `-3`, ... (in event order, so a
        replay gives the same ids): one id per incident, never two incidents under one."""
        base = f"{event['camera_id']}:{event['kind']}:{int(event['window_start_ms'])}"
        taken = set(self.open) | set(self.merged.values())
        incident_id, n = base, 1
        while incident_id in taken:
            n += 1
            incident_id = f"{base}-{n}"
        return incident_id

    def observe(self, event: dict, now_ms: int, uris: Callable[[str, str], tuple[str, str]]) -> list[dict]:
        """Fold one AnomalyEvent in; the incident revisions it causes (none for an event already merged)."""
        if event["event_id"] in self.merged:
            return []
        incident = self._match(event)
        if incident is None:
            incident_id = self._new_id(event)
            snapshot_uri, clip_uri = uris(event["camera_id"], incident_id)
            incident = OpenIncident(incident_id, event["camera_id"], event["kind"], int(event["window_start_ms"]),
                                    int(event["window_end_ms"]), float(event["score"]), float(event["threshold"]),
                                    snapshot_uri, clip_uri, last_seen_ms=int(event["window_end_ms"]))
            self.open[incident_id] = incident
            state = "open"
        else:
            incident.revision += 1
            incident.updated_ms = max(incident.updated_ms, int(event["window_end_ms"]))
            incident.last_seen_ms = max(incident.last_seen_ms, int(event["window_end_ms"]))
            incident.score = max(incident.score, float(event["score"]))
            state = "updated"
        incident.event_ids.append(event["event_id"])
        incident.track_ids += [t for t in event.get("track_ids") or [] if t not in incident.track_ids]
        if event.get("zone") is not None and event["zone"] not in incident.zones:
            incident.zones.append(event["zone"])
        self.merged[event["event_id"]] = incident.incident_id
        return [incident.record(state, now_ms, suspended=self.suspended)]

    def seen(self, ts_ms: int, track_ids, now_ms: int, suspended: bool | None = None,
             still_present=()) -> list[dict]:
        """The camera's frames up to `ts_ms` showed `track_ids` and still showed the evidence of the events
        `still_present`: refresh incidents holding them, and clear those whose evidence has gone (their revisions).
        `suspended` (None: unchanged) is whether the camera's lane rules are suspended now; when it changes, every
        incident still open gets a revision saying so."""
        present, events, cleared = set(track_ids), set(still_present), []
        for incident_id, incident in list(self.open.items()):
            if not incident.track_ids and events & set(incident.event_ids):
                incident.last_seen_ms = max(incident.last_seen_ms, ts_ms)
            if incident.track_ids or incident.last_seen_ms > incident.updated_ms:  # tracks, or an object seen
                if present & set(incident.track_ids):
                    incident.last_seen_ms = max(incident.last_seen_ms, ts_ms)
                quiet_ms = self.settings.clear_after_s * 1000
                since = max(incident.last_seen_ms, incident.updated_ms)
            else:
                quiet_ms = self.settings.quiet_clear_s * 1000
                since = incident.updated_ms
            if ts_ms - since >= quiet_ms:
                incident.revision += 1
                cleared.append(incident.record("cleared", now_ms, cleared_ms=ts_ms, suspended=self.suspended))
                del self.open[incident_id]
        if cleared:  # forget merged event ids of incidents long gone (a replay that far back re-opens nothing new)
            live = set(self.open)
            horizon = ts_ms - 10 * self.settings.merge_gap_s * 1000
            self.merged = {e: i for e, i in self.merged.items()
                           if i in live or int(i.rsplit(":", 1)[1].split("-")[0]) >= horizon}
        if suspended is None or suspended == self.suspended:
            return cleared
        self.suspended = suspended
        for incident in self.open.values():
            incident.revision += 1
        return cleared + [incident.record("updated", now_ms, suspended=suspended) for incident in self.open.values()]
