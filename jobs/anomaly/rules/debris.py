"""Debris / a fallen object: something that appeared in a traffic zone and stays, and no vehicle or person explains.

The detector cannot be relied on to know debris, so the rule reads ingest's class-agnostic static-object cue (the
frame's `VideoQuality.static_regions`, the dual-background measure of services/ingest/quality.py): regions that
differ from the camera's long-term background and have stayed so. A stopped or crawling vehicle makes such a region
too, and so does someone standing still; which it is, the tracks tell. A vehicle track that drove there
(`TrackHistory.arrived`) or a person track covering the region while it forms (its first `FORMATION_MS`), or in most
of the frames it was seen, makes it theirs for as long as it lasts (the stopped-vehicle, queue or pedestrian rule's
case), even through a later break of the track. A region that moves (`MAX_DRIFT_PX`: a crawling car's) is no object
that stays. A region nobody brought fires once it has been there for `seconds`, unless a vehicle or person covers it
at that moment (a car passing over it: it fires after).

The car camera's detector boxes a static object as a car that never moved; the stopped-vehicle event of such a track
on an unexplained region is this rule's (`explains`): one incident, debris. The event has the zone and no tracks (an
object is no track); while the object is still reported the rule lists the event as still present
(`still_present`), and the incident stage keeps its incident open for as long as that lasts, as it does a vehicle's
while the vehicle is seen, and clears it `clear_after_s` after the object was last seen (removed). A region is matched from frame to frame by overlap; one that fired is remembered for `FIRED_MEMORY_MS`, so an
object that a passing car hid for a while does not fire again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from jobs.anomaly.rules.base import PERSON, VEHICLES, Rule, RuleParams
from vigil.detections import box_iou

FORMATION_MS = 1000  # whose region it is, is decided over its first second
COVER_SHARE = 0.5  # a track's box holding this share of a region covers it
MATCH_IOU = 0.3  # a region this like a remembered one is the same
UNSEEN_MS = 3000  # a remembered region not reported for this long has gone
FIRED_MEMORY_MS = 60_000  # ... unless it fired: then it is remembered this long
MAX_COVERED_SHARE = 0.5  # covered by a vehicle or person in more of its frames than this: theirs
MAX_DRIFT_PX = 24.0  # its box's centre this far from where it formed: it moves (about 5 grey-copy pixels)


@dataclass
class Candidate:
    """A static region the rule follows (RuleState.notes["debris"])."""

    box: np.ndarray  # xyxy, frame px: where it was last reported
    first_box: np.ndarray  # where it formed
    born_ms: int  # when its pixels began to differ from the background (ingest's static_ms back from first sight)
    first_seen_ms: int
    last_seen_ms: int
    zone: str
    brought: bool = False  # a vehicle that drove there, or a person, covered it while it formed: theirs
    fired: bool = False
    frames: int = 0  # frames it was reported in
    covered_frames: int = 0  # of which a vehicle that drove there, or a person, covered it

    @property
    def drift_px(self) -> float:
        return float(np.hypot(*((self.box[:2] + self.box[2:]) - (self.first_box[:2] + self.first_box[2:])) / 2))

    @property
    def unexplained(self) -> bool:
        """Nobody brought it, and it stayed where it formed."""
        return (not self.brought and self.covered_frames <= MAX_COVERED_SHARE * self.frames
                and self.drift_px <= MAX_DRIFT_PX)


def covered_share(region: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of the region's box inside each of `boxes` (n, 4)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.float32)
    width = np.clip(np.minimum(region[2], boxes[:, 2]) - np.maximum(region[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(region[3], boxes[:, 3]) - np.maximum(region[1], boxes[:, 1]), 0, None)
    area = max(float((region[2] - region[0]) * (region[3] - region[1])), 1.0)
    return width * height / area


class Debris(Rule):
    kind = "debris"
    zone_kinds = ("traffic",)
    per_zone = True
    explains = frozenset({"stopped_vehicle"})

    class Params(RuleParams):
        seconds: float = Field(6.0, gt=0, description="There for at least this long (s).")
        min_area_px: float = Field(400.0, ge=0, description="Smaller static regions are ignored (frame px²; a 0.1 m² "
                                   "object on the overhead car camera).")

    def _explaining_boxes(self, scene) -> np.ndarray:
        """Boxes of this frame's tracks that explain a static region: people, and vehicles that drove there."""
        keep = []
        for index, (track_id, class_id) in enumerate(zip(scene.detections.tracker_id, scene.detections.class_id)):
            track = scene.tracks.get(int(track_id)) if track_id >= 0 else None
            if track is not None and (class_id == PERSON or (class_id in VEHICLES and track.arrived)):
                keep.append(index)
        return scene.detections.xyxy[keep]

    def check_zones(self, scene, zone_params):
        now, memory = scene.ts_ms, scene.state.notes.setdefault(self.kind, [])
        memory[:] = [c for c in memory if now - c.last_seen_ms <= (FIRED_MEMORY_MS if c.fired else UNSEEN_MS)]
        regions = [r for r in (scene.quality.static_regions if scene.quality is not None else ())]
        if not regions:
            return []
        boxes = np.stack([r.xyxy for r in regions])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        explaining, events = self._explaining_boxes(scene), []
        for region, box, (cx, cy) in zip(regions, boxes, centres):
            zone_index = next((i for i, zone in enumerate(scene.zones) if zone.kind == "traffic"
                               and zone.contains(np.array([[cx, cy]], dtype=np.float32))[0]), None)
            if zone_index is None:
                continue
            zone, params = scene.zones[zone_index], zone_params[zone_index]
            if not params.enabled or region.area_px < params.min_area_px:
                continue
            covered = bool((covered_share(box, explaining) >= COVER_SHARE).any())
            candidate = self._match(memory, box)
            if candidate is None:
                candidate = Candidate(box, box, now - region.static_ms, now, now, zone.name)
                memory.append(candidate)
            candidate.box, candidate.last_seen_ms = box, now
            candidate.frames += 1
            candidate.covered_frames += covered
            if now - candidate.first_seen_ms < FORMATION_MS:
                candidate.brought |= covered
                continue
            if not candidate.unexplained or candidate.fired or covered or \
                    now - candidate.born_ms < params.seconds * 1000:
                continue
            candidate.fired = True
            events.append(self.event(scene, candidate.born_ms, now, (now - candidate.born_ms) / 1000,
                                     params.seconds, [], zone, key=f"{zone.name}:{candidate.born_ms}"))
        return events

    def still_present(self, camera_id, state, now_ms):
        """A fired object reported in this frame (ingest's static regions) is still there; the job gathers these over
        a second's frames, so one frame without it changes nothing."""
        return [self.event_id(camera_id, f"{c.zone}:{c.born_ms}") for c in state.notes.get(self.kind, [])
                if c.fired and c.last_seen_ms >= now_ms]

    @staticmethod
    def _match(memory: list[Candidate], box: np.ndarray) -> Candidate | None:
        if not memory:
            return None
        overlap = box_iou(box[None], np.stack([c.box for c in memory]))[0]
        best = int(np.argmax(overlap))
        return memory[best] if overlap[best] >= MATCH_IOU else None

    def explained(self, scene, event):
        """A stopped "vehicle" that never moved, boxed on a region nobody brought: the detector's name for debris."""
        memory = scene.state.notes.get(self.kind, [])
        objects = [c.box for c in memory if c.unexplained and scene.ts_ms - c.first_seen_ms >= FORMATION_MS]
        if not objects:
            return False
        detections = scene.detections
        for track_id in event["track_ids"]:
            track = scene.tracks.get(track_id)
            if track is None or track.arrived:
                continue
            for box in detections.xyxy[detections.tracker_id == track_id]:
                if any(covered_share(obj, box[None])[0] >= COVER_SHARE for obj in objects):
                    return True
        return False
