"""The evidence service: for every new incident, a snapshot and an H.264 clip in the frame store.

`incidents.v1` + `frames.v1` + `detections.v1` → `<frame store>/_evidence/<camera>/<incident>.jpg|.mp4`, at the URIs
the incident carries (`snapshot_uri`, `clip_uri`; the job fills them with `vigil.evidence.evidence_uris`).
`vigil evidence`, `python -m services.evidence`.

- **A ring per camera** of the recent frames (FrameRefs, and the frame inside each DetectionBatch) with their boxes,
  classes and track ids once the detections arrive, bounded by capture time (pre-roll + post-roll + a margin behind
  the camera's newest frame, longer while an incident still needs it) and by a frame count.
- **A new incident** (revision 1) pins its clip window [opened_ms - pre-roll, opened_ms + post-roll] in the frame
  store, so retention keeps those frames however long the evidence waits, and waits for the post-roll: it is written
  once the camera's frames and detections reached the window's end, or the camera sent nothing for
  `VIGIL_EVIDENCE_QUIET_S` (stream ended, camera down), or after `VIGIL_EVIDENCE_MAX_WAIT_S` (say infer is down):
  then the clip is shorter and the log says so, and why.
- **The clip** holds the stored frames of the window (the frame store's listing, with the ring's frames), presentation
  times = capture times, so it plays in real time at any sampling rate. **The snapshot** is the frame of the window
  that shows the most of the incident's tracks (all tracked boxes for an incident without tracks, e.g. the
  autoencoder's), nearest the opening time, with those boxes drawn and labelled (class and track id). Corrupt and
  empty frames are skipped and counted. Pre-roll frames are read from the store, so a service that started late
  still gets them; what only the ring has (the boxes) is missed then, and the log says so.
- **Pins are released** when the evidence is written and the incident is cleared (the pin is extended to each
  update's end + post-roll meanwhile, so the raw frames of an open incident stay too); an incident never cleared has
  its pin expire after `VIGIL_EVIDENCE_PIN_HOURS`.
- **Idempotent and restartable**: an incident whose two files exist is skipped (replays). The pin is written before
  the incident's offset is committed (a store that refuses it stalls and retries the batch) and is from then on the
  durable record of the work: incidents still waiting when the service stopped are found again from their pins at
  start-up. Store failures while writing keep the incident waiting and retry (`VIGIL_EVIDENCE_RETRY_S`).
- One instance per deployment: it joins the three topics per camera in memory, and their partitions are assigned
  independently.

Settings (environment `VIGIL_*`, besides the platform's `VIGIL_FRAME_STORE` and Kafka settings):

| setting | default | meaning |
| --- | --- | --- |
| `VIGIL_EVIDENCE_PRE_ROLL_S` | 10 | clip seconds before the incident opened |
| `VIGIL_EVIDENCE_POST_ROLL_S` | 10 | clip seconds after it opened |
| `VIGIL_EVIDENCE_RING_MARGIN_S` | 60 | capture seconds the ring keeps beyond pre+post roll: how late an incident may arrive |
| `VIGIL_EVIDENCE_RING_MAX_FRAMES` | 5000 | most frames the ring holds per camera |
| `VIGIL_EVIDENCE_QUIET_S` | 15 | a camera silent this long (wall time) gets its waiting clips written short |
| `VIGIL_EVIDENCE_MAX_WAIT_S` | 120 | longest wait (wall time) for the post-roll after the incident arrived |
| `VIGIL_EVIDENCE_PIN_HOURS` | 48 | a retention pin not released by then expires |
| `VIGIL_EVIDENCE_RETRY_S` | 5 | wait before writing again after the store failed |
| `VIGIL_EVIDENCE_JPEG_QUALITY` | 90 | snapshot JPEG quality |
| `VIGIL_EVIDENCE_CRF` | 23 | clip quality (x264 constant rate factor; lower = better, bigger) |
| `VIGIL_EVIDENCE_MAX_BATCH` | 500 | most messages per consumed batch |
| `VIGIL_CONSUMER_GROUP` | vigil-evidence | consumer group |
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from vigil.config import Settings
from vigil.evidence import Clip, CorruptFrame, NoFrames, clip_window, draw_snapshot, evidence_uris, label, write_clip
from vigil.framestore import EvidenceStore, FrameNotFound, Pin, open_frame_store
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, Handler, Incoming, StartupError, StreamService, retry
from vigil.runtime import main as run_main
from vigil.topics import DETECTIONS, FRAMES, INCIDENTS

log = logging.getLogger("vigil.evidence")

PIN_OWNER = "evidence"
EDGE_TOLERANCE_MS = 1000  # a clip this close to its window's edges counts as complete
COUNTERS = ("incidents", "evidence_written", "clips_short", "skipped_existing", "duplicates", "corrupt_frames",
            "missing_frames", "no_frames", "write_errors")


class EvidenceSettings(Settings):
    consumer_group: str = "vigil-evidence"
    evidence_pre_roll_s: float = Field(10.0, ge=0, description="Clip seconds before the incident opened.")
    evidence_post_roll_s: float = Field(10.0, ge=0, description="Clip seconds after the incident opened.")
    evidence_ring_margin_s: float = Field(60.0, ge=0, description="Capture seconds the ring keeps beyond pre+post "
                                          "roll: how late an incident may arrive and still find its boxes.")
    evidence_ring_max_frames: int = Field(5000, ge=10, description="Most frames the ring holds per camera.")
    evidence_quiet_s: float = Field(15.0, gt=0, description="A camera silent this long (wall time) has its waiting "
                                    "clips written with the frames there are.")
    evidence_max_wait_s: float = Field(120.0, gt=0, description="Longest wait (wall time) for the post-roll.")
    evidence_pin_hours: float = Field(48.0, gt=0, description="An unreleased retention pin expires after this.")
    evidence_retry_s: float = Field(5.0, gt=0, description="Wait before writing again after the store failed.")
    evidence_jpeg_quality: int = Field(90, ge=10, le=100, description="Snapshot JPEG quality.")
    evidence_crf: int = Field(23, ge=0, le=51, description="Clip quality: x264 constant rate factor.")
    evidence_max_batch: int = Field(500, ge=1, description="Most messages per consumed batch.")


@dataclass
class RingFrame:
    capture_ts_ms: int
    uri: str
    xyxy: np.ndarray | None = None  # (n, 4); None until the frame's detections arrived
    class_id: np.ndarray | None = None
    track_id: np.ndarray | None = None


class CameraRing:
    """One camera's recent frames by capture time, with their boxes once the detections arrived."""

    def __init__(self, max_frames: int):
        self.max_frames = max_frames
        self.frames: dict[int, RingFrame] = {}
        self.order: deque[int] = deque()  # arrival order (about capture order), for eviction
        self.newest_frame_ms = self.newest_detection_ms = -1
        self.floor_ms = -1  # frames older than this were evicted; late detections for them are ignored
        self.last_seen = 0.0  # monotonic time of the camera's last record

    def _entry(self, ts_ms: int, uri: str) -> RingFrame | None:
        if ts_ms < self.floor_ms:
            return None
        entry = self.frames.get(ts_ms)
        if entry is None:
            entry = self.frames[ts_ms] = RingFrame(ts_ms, uri)
            self.order.append(ts_ms)
        return entry

    def saw_frame(self, frame: dict, now: float) -> None:
        self._entry(int(frame["capture_ts_ms"]), frame["uri"])
        self.newest_frame_ms = max(self.newest_frame_ms, int(frame["capture_ts_ms"]))
        self.last_seen = now

    def saw_detections(self, record: dict, now: float) -> None:
        xyxy = np.asarray(record["xyxy"], np.float32).reshape(-1, 4)
        class_id, track_id = np.asarray(record["class_id"], np.int64), np.asarray(record["track_id"], np.int64)
        if not len(xyxy) == len(class_id) == len(track_id):
            raise ValueError(f"{len(xyxy)} boxes, {len(class_id)} classes, {len(track_id)} track ids")
        self.saw_frame(record["frame"], now)
        entry = self._entry(int(record["frame"]["capture_ts_ms"]), record["frame"]["uri"])
        if entry is not None:
            entry.xyxy, entry.class_id, entry.track_id = xyxy, class_id, track_id
        self.newest_detection_ms = max(self.newest_detection_ms, int(record["frame"]["capture_ts_ms"]))

    def evict(self, keep_from_ms: int) -> None:
        self.floor_ms = max(self.floor_ms, keep_from_ms)
        while self.order and (self.order[0] < keep_from_ms or len(self.frames) > self.max_frames):
            self.frames.pop(self.order.popleft(), None)

    def between(self, from_ms: int, to_ms: int) -> list[RingFrame]:
        return sorted((f for ts, f in self.frames.items() if from_ms <= ts <= to_ms), key=lambda f: f.capture_ts_ms)

    @property
    def newest_ms(self) -> int:
        return max(self.newest_frame_ms, self.newest_detection_ms)


@dataclass
class Pending:
    """An incident whose evidence is not written yet."""

    incident_id: str
    camera_id: str
    opened_ms: int
    track_ids: list[int]
    snapshot_uri: str
    clip_uri: str
    from_ms: int
    to_ms: int
    arrived: float = field(default_factory=time.monotonic)
    retry_at: float = 0.0

    def note(self) -> dict:
        return {"owner": PIN_OWNER, "opened_ms": self.opened_ms, "track_ids": self.track_ids,
                "snapshot_uri": self.snapshot_uri, "clip_uri": self.clip_uri, "clip_from_ms": self.from_ms,
                "clip_to_ms": self.to_ms}

    @classmethod
    def from_pin(cls, pin: Pin) -> Pending:
        note = pin.note
        return cls(pin.pin_id, pin.camera_id, int(note["opened_ms"]), [int(t) for t in note["track_ids"]],
                   note["snapshot_uri"], note["clip_uri"], int(note["clip_from_ms"]), int(note["clip_to_ms"]))


class WriteEvidence(Handler):
    def __init__(self, settings: EvidenceSettings, store: EvidenceStore, dead_letters: DeadLetters | None = None):
        self.settings, self.store, self.dead_letters = settings, store, dead_letters
        self.rings: dict[str, CameraRing] = {}
        self.pending: dict[str, Pending] = {}
        self.held: dict[str, Pin] = {}  # retention pins this service holds, by incident id
        self.cleared: set[str] = set()  # incidents cleared while their evidence was still pending
        self.counts: Counter = Counter()
        self.restore()

    # --- state -----------------------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Incidents still waiting (or open) when the service last stopped, from the pins it left in the store."""
        for pin in self.store.pins():
            if pin.note.get("owner") != PIN_OWNER:
                continue
            try:
                pending = Pending.from_pin(pin)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("ignoring the unreadable pin of %s: %s", pin.pin_id, exc)
                continue
            self.held[pin.pin_id] = pin
            if not (self.store.exists(pending.snapshot_uri) and self.store.exists(pending.clip_uri)):
                self.pending[pin.pin_id] = pending
        if self.held:
            log.info("resuming %d pinned incidents, %d of them without evidence yet", len(self.held), len(self.pending))

    def ring(self, camera_id: str) -> CameraRing:
        if camera_id not in self.rings:
            self.rings[camera_id] = CameraRing(self.settings.evidence_ring_max_frames)
        return self.rings[camera_id]

    def _pin(self, pin: Pin, stop: threading.Event | None) -> bool:
        ok, _ = retry(lambda: self.store.pin(pin), stop, f"pinning the frames of {pin.pin_id}", log)
        if ok:
            self.held[pin.pin_id] = pin
        return ok

    def _release(self, incident_id: str) -> None:
        try:
            self.store.unpin(incident_id)
        except Exception:  # the pin then expires on its own
            log.exception("could not release the pin of %s; it expires after %.0f h", incident_id,
                          self.settings.evidence_pin_hours)
        self.held.pop(incident_id, None)
        self.cleared.discard(incident_id)

    def _uris(self, record: dict) -> tuple[str, str]:
        """The record's evidence URIs when this store can write them, else the ones `evidence_uris` gives here."""
        own = evidence_uris(self.settings.frame_store_uri, record["camera_id"], record["incident_id"])
        uris = (record.get("snapshot_uri") or own[0], record.get("clip_uri") or own[1])
        try:
            for uri in uris:
                self.store.exists(uri)
        except ValueError:
            log.warning("incident %s names evidence URIs outside this frame store (%s); writing to %s instead",
                        record["incident_id"], uris, own)
            return own
        return uris

    # --- records ---------------------------------------------------------------------------------------------------
    def on_incident(self, record: dict, stop: threading.Event | None) -> bool:
        incident_id, camera_id = record["incident_id"], record["camera_id"]
        if record["revision"] == 1:
            if incident_id in self.pending or incident_id in self.held:
                self.counts["duplicates"] += 1
            else:
                snapshot_uri, clip_uri = self._uris(record)
                if self.store.exists(snapshot_uri) and self.store.exists(clip_uri):
                    self.counts["skipped_existing"] += 1
                    log.info("evidence of %s exists already; skipped", incident_id)
                else:
                    from_ms, to_ms = clip_window(record["opened_ms"], self.settings.evidence_pre_roll_s,
                                                 self.settings.evidence_post_roll_s)
                    pending = Pending(incident_id, camera_id, int(record["opened_ms"]),
                                      [int(t) for t in record["track_ids"]], snapshot_uri, clip_uri, from_ms, to_ms)
                    expires_ms = int((time.time() + self.settings.evidence_pin_hours * 3600) * 1000)
                    if not self._pin(Pin(incident_id, camera_id, from_ms, to_ms, expires_ms, pending.note()), stop):
                        return False
                    self.pending[incident_id] = pending
                    self.counts["incidents"] += 1
        if record["state"] == "cleared":
            if incident_id in self.pending:
                self.cleared.add(incident_id)
            elif incident_id in self.held:
                self._release(incident_id)
        elif record["revision"] > 1 and incident_id in self.held:
            pin = self.held[incident_id]
            to_ms = int(record["updated_ms"] + self.settings.evidence_post_roll_s * 1000)
            if to_ms > pin.to_ms:
                return self._pin(Pin(pin.pin_id, pin.camera_id, pin.from_ms, to_ms, pin.expires_ms, pin.note), stop)
        return True

    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        now = time.monotonic()
        for incoming in batch:
            record = incoming.record
            if incoming.record_type == "FrameRef":
                self.ring(record["camera_id"]).saw_frame(record, now)
            elif incoming.record_type == "DetectionBatch":
                try:
                    self.ring(record["frame"]["camera_id"]).saw_detections(record, now)
                except (KeyError, TypeError, ValueError) as exc:
                    if self.dead_letters:
                        self.dead_letters.send(incoming.message, f"inconsistent detections: {exc}")
            elif incoming.record_type == "Incident" and not self.on_incident(record, stop):
                return False
        self.write_ready()
        self.evict()
        return True

    def idle(self) -> None:
        self.write_ready()

    def close(self) -> None:
        if self.pending:
            log.info("%d incidents still wait for evidence; their pins bring them back at the next start",
                     len(self.pending))

    def evict(self) -> None:
        keep_s = self.settings.evidence_pre_roll_s + self.settings.evidence_post_roll_s + \
            self.settings.evidence_ring_margin_s
        for camera_id, ring in self.rings.items():
            floor = ring.newest_ms - int(keep_s * 1000)
            for pending in self.pending.values():
                if pending.camera_id == camera_id:
                    floor = min(floor, pending.from_ms)
            ring.evict(floor)

    # --- writing ---------------------------------------------------------------------------------------------------
    def ready(self, pending: Pending, now: float) -> str | None:
        """Why the evidence can be written now, or None to wait for more post-roll."""
        ring = self.rings.get(pending.camera_id)
        if ring and ring.newest_frame_ms >= pending.to_ms and ring.newest_detection_ms >= pending.to_ms:
            return "complete"
        if now - max(pending.arrived, ring.last_seen if ring else 0.0) >= self.settings.evidence_quiet_s:
            return f"the camera sent nothing for {self.settings.evidence_quiet_s:.0f} s"
        if now - pending.arrived >= self.settings.evidence_max_wait_s:
            return f"the post-roll did not arrive within {self.settings.evidence_max_wait_s:.0f} s"
        return None

    def write_ready(self) -> None:
        now = time.monotonic()
        for pending in list(self.pending.values()):
            reason = pending.retry_at <= now and self.ready(pending, now)
            if not reason:
                continue
            try:
                self.write(pending, reason)
            except Exception as exc:  # a store outage: keep the incident and its pin, try again later
                self.counts["write_errors"] += 1
                pending.retry_at = time.monotonic() + self.settings.evidence_retry_s
                log.error("writing the evidence of %s failed (%s); retrying in %.0f s", pending.incident_id,
                          str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                          self.settings.evidence_retry_s, exc_info=self.counts["write_errors"] == 1)

    def write(self, pending: Pending, reason: str) -> None:
        ring = self.rings.get(pending.camera_id)
        ring_frames = ring.between(pending.from_ms, pending.to_ms) if ring else []
        uris = dict(self.store.frames_between(pending.camera_id, pending.from_ms, pending.to_ms))
        for frame in ring_frames:
            uris.setdefault(frame.capture_ts_ms, frame.uri)
        frames, missing = [], 0
        for ts_ms, uri in sorted(uris.items()):
            try:
                frames.append((ts_ms, self.store.get(uri)))
            except FrameNotFound:
                missing += 1
        self.counts["missing_frames"] += missing
        try:
            clip = write_clip(frames, crf=self.settings.evidence_crf)
        except NoFrames as exc:
            self.counts["no_frames"] += 1
            self.counts["corrupt_frames"] += len(frames)
            log.error("no evidence for %s (%s): %s in %d..%d", pending.incident_id, reason, exc, pending.from_ms,
                      pending.to_ms)
            self._done(pending)
            return
        self.counts["corrupt_frames"] += clip.skipped
        snapshot, snapshot_ts, boxes = self.snapshot(pending, ring_frames, frames)
        self.store.put_object(pending.clip_uri, clip.data)
        self.store.put_object(pending.snapshot_uri, snapshot)
        self.counts["evidence_written"] += 1
        self._report(pending, reason, clip, snapshot_ts, boxes, ring, missing)
        self._done(pending)

    def _done(self, pending: Pending) -> None:
        del self.pending[pending.incident_id]
        if pending.incident_id in self.cleared:
            self._release(pending.incident_id)

    def snapshot(self, pending: Pending, ring_frames: list[RingFrame], frames: list[tuple[int, bytes]]
                 ) -> tuple[bytes, int, int]:
        """(JPEG, capture time, boxes drawn): the frame showing the most involved tracks, nearest the opening."""
        data = dict(frames)
        candidates = []
        for frame in ring_frames:
            if frame.xyxy is None or frame.capture_ts_ms not in data:
                continue
            involved = (np.isin(frame.track_id, pending.track_ids) if pending.track_ids
                        else np.ones(len(frame.track_id), bool))  # no tracks (autoencoder): the whole scene
            if involved.any():
                candidates.append((-int(involved.sum()), abs(frame.capture_ts_ms - pending.opened_ms), frame, involved))
        candidates.sort(key=lambda c: c[:2])
        quality = self.settings.evidence_jpeg_quality
        for _, _, frame, involved in candidates:
            labels = [label(c, t) for c, t in zip(frame.class_id[involved], frame.track_id[involved])]
            try:
                return draw_snapshot(data[frame.capture_ts_ms], frame.xyxy[involved], labels, quality), \
                    frame.capture_ts_ms, int(involved.sum())
            except CorruptFrame:
                continue
        for ts_ms in sorted(data, key=lambda ts: abs(ts - pending.opened_ms)):
            try:
                return draw_snapshot(data[ts_ms], [], [], quality), ts_ms, 0
            except CorruptFrame:
                continue
        raise NoFrames("no frame of the clip decodes")  # unreachable: write_clip decoded at least one

    def _report(self, pending: Pending, reason: str, clip: Clip, snapshot_ts: int, boxes: int, ring: CameraRing | None,
                missing: int) -> None:
        log.info("evidence of %s: %s (%d frames, %.1f s, %d corrupt skipped, %d gone), %s (%d boxes at %+.1f s)",
                 pending.incident_id, pending.clip_uri, clip.frames, clip.duration_ms / 1000, clip.skipped, missing,
                 pending.snapshot_uri, boxes, (snapshot_ts - pending.opened_ms) / 1000)
        if clip.first_ts_ms > pending.from_ms + EDGE_TOLERANCE_MS:
            log.warning("%s: the clip starts %.1f s into its pre-roll: the store has no earlier frames (retention, or "
                        "the camera started later)", pending.incident_id, (clip.first_ts_ms - pending.from_ms) / 1000)
        if clip.last_ts_ms < pending.to_ms - EDGE_TOLERANCE_MS:
            self.counts["clips_short"] += 1
            log.warning("%s: the clip ends %.1f s before its post-roll end: %s", pending.incident_id,
                        (pending.to_ms - clip.last_ts_ms) / 1000, reason)
        if ring is None or ring.floor_ms > pending.from_ms or not ring.frames or min(ring.frames) > pending.from_ms:
            log.warning("%s: the detections before %s were not seen (the service started later or the ring is "
                        "shorter than the incident's delay, VIGIL_EVIDENCE_RING_MARGIN_S); the snapshot may lack "
                        "boxes", pending.incident_id, min(ring.frames) if ring and ring.frames else "now")

    def stats(self) -> dict:
        return {"pending": len(self.pending), "pins_held": len(self.held), **{k: self.counts[k] for k in COUNTERS}}


class EvidenceService(StreamService):
    def __init__(self, settings: EvidenceSettings, store: EvidenceStore | None = None):
        store = store if store is not None else open_frame_store(settings.frame_store_uri)
        if not all(hasattr(store, name) for name in ("put_object", "exists", "frames_between", "pin", "pins")):
            raise StartupError(f"the frame store {settings.frame_store_uri} cannot keep evidence or pins")
        self.kafka = KafkaOutput(settings)  # dead letters
        dead_letters = DeadLetters(self.kafka, "evidence", settings)
        self.evidence = WriteEvidence(settings, store, dead_letters)
        super().__init__(settings, "evidence", [INCIDENTS, FRAMES, DETECTIONS], self.evidence, [self.kafka],
                         dead_letters, settings.consumer_group, batch_size=settings.evidence_max_batch,
                         poll_timeout_s=0.2, codec=self.kafka.codec, consumer_overrides={"max.poll.interval.ms": 600000})


def main(argv: list[str] | None = None) -> int:
    return run_main("vigil evidence", "Write a snapshot and an H.264 clip of every incident to the frame store.",
                    lambda args: EvidenceService(EvidenceSettings()), argv=argv)
