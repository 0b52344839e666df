"""The anomaly job (PyFlink DataStream): `detections.v1` → per-camera event-time windows → scene features →
autoencoder score against an adaptive per-camera threshold, plus known-anomaly rules per frame → `events.v1`; and the
incident stage that folds those raw events into one incident per real-world event → `incidents.v1`.

    source (KafkaSource, Kafka record time = capture time, bounded out-of-orderness watermarks)
      → decode → key by camera ─┬─ rules (RuleEngine, its memory in keyed state)           ─┐
                                └─ tumbling window → features → autoencoder (keyed state) ─┴─ union → encode → KafkaSink
      rules' events + presence (tracks seen, once a second) + autoencoder events
      → key by camera → incidents (IncidentBook in keyed state) → encode → KafkaSink (incidents.v1)

The topology lives in `build_pipeline(stream)`, free of connectors, so tests run it on `from_collection`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream.functions import KeyedProcessFunction, ProcessWindowFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import TumblingEventTimeWindows

from jobs.anomaly.incidents import PRESENCE_EVERY_MS, IncidentBook, IncidentSettings, Presence
from jobs.anomaly.rules import RuleEngine, RuleState
from vigil.detections import DetectionFrame
from vigil.features import COLD_WINDOWS, scene_features
from vigil.flink_metrics import JobMetrics
from vigil.zones import RuleSettings, Zone

PICKLED = Types.PICKLED_BYTE_ARRAY()
BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
FIRST_SEEN_RETENTION_MS = 120_000


def decode_detections(value: bytes):
    """DetectionBatch Avro → `(camera_id, DetectionFrame)`; undecodable or inconsistent input (e.g. array lengths
    that do not match) → `(None, reason, raw bytes)` for the dead-letter branch."""
    from vigil.avro_codec import UndecodableMessage
    from vigil.flink_env import worker_codec

    try:
        record = worker_codec().decode(bytes(value), expected="DetectionBatch")
        frame = DetectionFrame.from_record(record)
    except (UndecodableMessage, ValueError) as exc:
        return None, str(exc), bytes(value)
    return frame.camera_id, frame


def rule_engines(zones_by_camera: dict[str, list[Zone]],
                 rules_by_camera: dict[str, RuleSettings]) -> dict[str, RuleEngine]:
    """A RuleEngine per configured camera; raises RuleSettingsError naming the camera, zone and rule of a bad
    `rules:` entry (so the job fails at start-up, not on the first frame)."""
    return {camera_id: RuleEngine(camera_id, zones_by_camera.get(camera_id, []), rules_by_camera.get(camera_id))
            for camera_id in sorted(set(zones_by_camera) | set(rules_by_camera))}


class Rules(KeyedProcessFunction):
    """The rules per camera. The camera's memory (track histories, cool-downs) is keyed state, so it survives
    restarts through checkpoints; zones and rule settings come from the camera file each time the job starts."""

    def __init__(self, zones_by_camera: dict[str, list[Zone]], rules_by_camera: dict[str, RuleSettings]):
        self.zones_by_camera, self.rules_by_camera = zones_by_camera, rules_by_camera

    def open(self, runtime_context: RuntimeContext):
        self.rule_state = runtime_context.get_state(ValueStateDescriptor("rule_state", PICKLED))
        self.presence = runtime_context.get_state(ValueStateDescriptor("presence", PICKLED))
        self.engines = rule_engines(self.zones_by_camera, self.rules_by_camera)

    def process_element(self, value, ctx):
        camera_id, frame = value
        engine = self.engines.get(camera_id)
        if engine is None:  # a camera without zones or settings: the whole image is a traffic zone
            engine = self.engines[camera_id] = RuleEngine(camera_id)
        engine.state = self.rule_state.value() or RuleState()
        events = engine.observe(frame)
        self.rule_state.update(engine.state)
        # which tracks the camera showed, once a second of its event time, for the incident stage's clearing, and
        # whether its lane rules are suspended (camera moved, frozen): at once when that changes, ahead of the events
        # and which trackless findings are still in view (debris: the object is still there)
        suspended = engine.state.suspended_since_ms is not None
        last_ts, seen, was_suspended, present = (*(self.presence.value() or (None, set(), False)), set(), set())[:4]
        seen |= {int(t) for t in frame.detections.tracker_id if t >= 0}
        present |= engine.still_present(int(frame.ts_ms))

        def presence():
            return Presence(camera_id, int(frame.ts_ms), tuple(sorted(seen)), suspended, tuple(sorted(present)))
        if was_suspended != suspended:
            yield presence()
            last_ts, seen, present = int(frame.ts_ms), set(), set()
        yield from events
        if last_ts is None or frame.ts_ms - last_ts >= PRESENCE_EVERY_MS:
            yield presence()
            last_ts, seen, present = int(frame.ts_ms), set(), set()
        self.presence.update((last_ts, seen, suspended, present))


def incident_uris(frame_store_uri: str):
    """The evidence URIs of an incident, as the evidence service writes them."""
    def uris(camera_id: str, incident_id: str) -> tuple[str, str]:
        from vigil.evidence import evidence_uris

        return evidence_uris(frame_store_uri, camera_id, incident_id)
    return uris


class Incidents(KeyedProcessFunction):
    """One camera's IncidentBook in keyed state: raw events in, incident revisions out."""

    def __init__(self, settings: IncidentSettings, frame_store_uri: str):
        self.settings, self.frame_store_uri = settings, frame_store_uri
        self.metrics: JobMetrics | None = None  # set in open(); the stage also runs without Flink (tests, replays)

    def open(self, runtime_context: RuntimeContext):
        self.book = runtime_context.get_state(ValueStateDescriptor("incident_book", PICKLED))
        self.uris = incident_uris(self.frame_store_uri)
        self.metrics = JobMetrics(runtime_context)

    def process_element(self, value, ctx):
        book = self.book.value() or IncidentBook(self.settings)
        book.settings = self.settings  # settings come from the job's start, not the checkpoint
        now_ms = int(time.time() * 1000)
        if isinstance(value, Presence):
            revisions = book.seen(value.ts_ms, value.track_ids, now_ms, value.suspended, value.still_present)
        else:
            revisions = book.observe(value, now_ms, self.uris)
        self.book.update(book)
        for revision in revisions if self.metrics is not None else ():
            self.metrics.count("incident_revisions", kind=revision["kind"], state=revision["state"])
        yield from revisions


class WindowFeatures(ProcessWindowFunction):
    """Scene feature vector per camera window; track first-seen times persist across windows in per-key state.
    The first `COLD_WINDOWS` windows of a camera are marked cold: tracks already in view when the job started have
    unknown dwell times, so those windows are not scored (training leaves them out the same way)."""

    def open(self, runtime_context: RuntimeContext):
        self.first_seen_descriptor = ValueStateDescriptor("first_seen", PICKLED)

    def process(self, key, context, elements):
        frames = [frame for _, frame in elements]
        first_seen_state = context.global_state().get_state(self.first_seen_descriptor)
        history = first_seen_state.value() or {"first_seen": {}, "windows": 0}
        first_seen = history["first_seen"]
        cold = history["windows"] < COLD_WINDOWS
        vector = scene_features(frames, first_seen)
        window = context.window()
        for frame in sorted(frames, key=lambda f: f.ts_ms):
            for track in frame.detections.tracker_id:
                first_seen.setdefault(int(track), frame.ts_ms)
        cutoff = window.end - FIRST_SEEN_RETENTION_MS
        first_seen_state.update({"first_seen": {t: ts for t, ts in first_seen.items() if ts >= cutoff},
                                 "windows": history["windows"] + 1})
        yield key, window.start, window.end, vector, cold

    def clear(self, context):
        pass


class AutoencoderScorer(KeyedProcessFunction):
    """Scores windows with the camera's approved autoencoder, picking up newly approved versions without a restart.

    Threshold per camera, in keyed state: during warm-up, the model's validated hold-out p99 × `margin`; after
    `warmup_windows` normal windows, the running `quantile` of the recent normal scores (× margin), never below the
    validated value."""

    def __init__(self, registry_root: str, warmup_windows: int = 30, quantile: float = 0.99, margin: float = 1.5,
                 history: int = 500, reload_interval_s: float = 5.0):
        self.registry_root, self.warmup_windows, self.quantile = registry_root, warmup_windows, quantile
        self.margin, self.history, self.reload_interval_s = margin, history, reload_interval_s

    def open(self, runtime_context: RuntimeContext):
        from vigil.model_registry import Registry

        self.registry = Registry(Path(self.registry_root))
        self.models: dict[str, tuple[str, object, float]] = {}
        self.checked_at: dict[str, float] = {}
        self.scores_state = runtime_context.get_state(ValueStateDescriptor("scores", PICKLED))

    def _model(self, camera_id: str):
        now = time.monotonic()
        if now - self.checked_at.get(camera_id, -1e9) >= self.reload_interval_s:
            self.checked_at[camera_id] = now
            version = self.registry.approved(camera_id)
            if version is None:
                self.models.pop(camera_id, None)
            elif camera_id not in self.models or self.models[camera_id][0] != version:
                meta = self.registry.metadata(camera_id, version)
                self.models[camera_id] = (version, self.registry.load(camera_id, version),
                                          float(meta["validation"]["holdout_error"]["p99"]))
        return self.models.get(camera_id)

    def process_element(self, value, ctx):
        camera_id, start, end, vector, cold = value
        loaded = self._model(camera_id)
        if loaded is None or cold:
            return
        version, model, validated = loaded
        state = self.scores_state.value()
        if state is None or state["version"] != version:
            state = {"version": version, "scores": []}  # a new model has its own error scale: warm up again
        (error,), (top,) = model.score(np.asarray(vector)[None, :])
        floor = validated * self.margin
        if len(state["scores"]) >= self.warmup_windows:
            threshold = max(float(np.quantile(state["scores"], self.quantile)) * self.margin, floor)
        else:
            threshold = floor
        if error > threshold:
            yield dict(event_id=f"{camera_id}:autoencoder:{start}", camera_id=camera_id, kind="autoencoder",
                       window_start_ms=int(start), window_end_ms=int(end), score=float(error), threshold=float(threshold),
                       track_ids=[], zone=None, top_cells=list(top), model_version=version, emitted_ts_ms=0)
        else:
            state["scores"] = (state["scores"] + [float(error)])[-self.history:]
        self.scores_state.update(state)


def build_pipeline(frames, zones_by_camera: dict[str, list[Zone]], registry_root: str, window_ms: int = 2000,
                   rules_by_camera: dict[str, RuleSettings] | None = None, warmup_windows: int = 30,
                   incidents: IncidentSettings | None = None, frame_store_uri: str = ""):
    """frames: a DataStream of `(camera_id, DetectionFrame)` with event-time timestamps and watermarks; zones and
    camera-level rule settings per camera id. Returns `(events, incidents)`: DataStreams of AnomalyEvent dicts and of
    Incident dicts. Bad rule settings raise RuleSettingsError here, before the job runs."""
    rules_by_camera = rules_by_camera or {}
    rule_engines(zones_by_camera, rules_by_camera)  # validates every camera's and zone's rule settings
    keyed = frames.key_by(lambda value: value[0], key_type=Types.STRING())
    rule_output = keyed.process(Rules(zones_by_camera, rules_by_camera), output_type=PICKLED)
    rule_events = rule_output.filter(lambda value: not isinstance(value, Presence))
    windows = (keyed.window(TumblingEventTimeWindows.of(Time.milliseconds(window_ms)))
               .process(WindowFeatures(), output_type=PICKLED))
    scored = (windows.key_by(lambda value: value[0], key_type=Types.STRING())
              .process(AutoencoderScorer(registry_root, warmup_windows=warmup_windows), output_type=PICKLED))
    incident_stream = (rule_output.union(scored)
                       .key_by(camera_of, key_type=Types.STRING())
                       .process(Incidents(incidents or IncidentSettings(), frame_store_uri), output_type=PICKLED))
    return rule_events.union(scored), incident_stream


def camera_of(value) -> str:
    return value.camera_id if isinstance(value, Presence) else value["camera_id"]


def encode_event(event: dict):
    """AnomalyEvent dict → Row(key = camera id, Avro value) for the KafkaSink."""
    from vigil.flink_env import encode_stamped

    return encode_stamped("AnomalyEvent", event, "camera_id")


def encode_incident(incident: dict):
    """Incident dict → Row(key = camera id, Avro value) for the KafkaSink."""
    from vigil.flink_env import encode_stamped

    return encode_stamped("Incident", incident, "camera_id")

