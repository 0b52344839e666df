"""The traffic-data job (PyFlink DataStream): `detections.v1` + `camera-status.v1` → per camera a `TrafficEngine` in
keyed state → `VehiclePassage` records as vehicles cross count lines, and one `TrafficBin` per lane and minute when
event time passes the minute's end → `traffic.v1`.

    source (KafkaSource on both topics, Kafka record time = capture time / status time, bounded out-of-orderness)
      → decode → key by camera → Traffic (engine + recent camera statuses in keyed state, event-time timer per bin)
      → encode → KafkaSink

A bin closes `allowed_lateness_ms` after event time passed its end, so frames of a partition that lags the others
(the watermark follows the fastest once a partition idles) still land in their bin. A camera whose frames are held up
on the way (Triton or infer down for longer than that: its detections stop, its partitions idle, and the camera-status
records alone move event time on) still says it is ONLINE after the bin's end: its bins wait for its frames to pass
their end, for at most `HOLD_MAX_MS` of event time, instead of closing without them and dropping them on arrival. A bin carries the camera's state
during it (from camera-status.v1), so "camera down" is never reported as "no
traffic". When a camera's stream ends (status ENDED) its open bins are closed once no frame of it has arrived for
`ended_grace_ms` of processing time (its last frames trail the status through infer), since no later record would
move event time for it. The topology lives in `build_pipeline(stream)`, free of
connectors, so tests run it on `from_collection`.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from jobs.traffic.engine import TrafficEngine
from vigil.avro_codec import UndecodableMessage
from vigil.detections import DetectionFrame
from vigil.flink_env import encode_stamped, worker_codec
from vigil.geometry import TrafficGeometry

PICKLED = Types.PICKLED_BYTE_ARRAY()
BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
FRAME, STATUS = "frame", "status"
STATUS_RETENTION_MS = 600_000
HOLD_MAX_MS = 600_000  # the longest a bin waits for a live camera's held-up frames (event time past its normal close)
RECHECK_MS = 1000  # a held bin is looked at again this much event time later


def decode(value: bytes):
    """DetectionBatch → `(camera_id, FRAME, DetectionFrame)`, CameraStatus → `(camera_id, STATUS, (ts_ms, state))`;
    anything else → `(None, reason, raw bytes)` for the dead-letter branch."""
    codec = worker_codec()
    try:
        record_type = codec.record_type(bytes(value))
        if record_type == "CameraStatus":
            status = codec.decode(bytes(value), expected="CameraStatus")
            return status["camera_id"], STATUS, (int(status["ts_ms"]), status["state"])
        frame = DetectionFrame.from_record(codec.decode(bytes(value), expected="DetectionBatch"))
    except (UndecodableMessage, ValueError) as exc:
        return None, str(exc), bytes(value)
    return frame.camera_id, FRAME, frame


def camera_state_during(statuses: list[tuple[int, str]], bin_start_ms: int, bin_end_ms: int) -> str | None:
    """The worst state the camera reported in the bin, else the last one before it (None if never reported).
    ENDED (a file or stream that finished) is no fault: the bin's frames say what was observed (none = no_data)."""
    statuses = [(ts, state) for ts, state in statuses if state != "ENDED"]
    inside = [state for ts, state in statuses if bin_start_ms <= ts < bin_end_ms]
    for worst in ("OFFLINE", "DEGRADED"):
        if worst in inside:
            return worst
    before = [state for ts, state in statuses if ts < bin_start_ms]
    return before[-1] if before else (inside[-1] if inside else None)


class Traffic(KeyedProcessFunction):
    """One TrafficEngine per camera in keyed state; passages out as they happen, bins out when event time passes
    their end (or after a grace period once the camera's stream has ended)."""

    def __init__(self, geometry_by_camera: dict[str, TrafficGeometry], bin_ms: int = 60_000,
                 ended_grace_ms: int = 10_000, allowed_lateness_ms: int = 10_000):
        self.geometry_by_camera, self.bin_ms, self.ended_grace_ms = geometry_by_camera, bin_ms, ended_grace_ms
        self.allowed_lateness_ms = allowed_lateness_ms

    def open(self, runtime_context: RuntimeContext):
        self.engine_state = runtime_context.get_state(ValueStateDescriptor("traffic_engine", PICKLED))
        self.memory_state = runtime_context.get_state(ValueStateDescriptor("traffic_memory", PICKLED))

    def _load(self, camera_id: str):
        engine = self.engine_state.value()
        if engine is None:
            engine = TrafficEngine(camera_id, self.geometry_by_camera.get(camera_id), self.bin_ms)
        memory = self.memory_state.value() or {"statuses": [], "open_bins": [], "ended": False}
        return engine, memory

    def _save(self, engine, memory) -> None:
        self.engine_state.update(engine)
        self.memory_state.update(memory)

    def _open_bin(self, memory: dict, ts_ms: int, ctx) -> None:
        start = ts_ms - ts_ms % self.bin_ms
        if start not in memory["open_bins"]:
            memory["open_bins"] = sorted(memory["open_bins"] + [start])
            ctx.timer_service().register_event_time_timer(start + self.bin_ms + self.allowed_lateness_ms)

    def process_element(self, value, ctx):
        camera_id, kind, payload = value
        if camera_id not in self.geometry_by_camera:
            return
        engine, memory = self._load(camera_id)
        if kind == FRAME:  # frames can trail their camera's ENDED status (they pass through infer): still counted
            memory["frame_ms"] = max(memory.get("frame_ms", 0), int(payload.ts_ms))
            self._open_bin(memory, payload.ts_ms, ctx)
            if memory["ended"]:  # ... and each one that does pushes the closing of the camera's bins back
                self._close_later(memory, ctx)
            for passage in engine.observe(payload):
                yield "VehiclePassage", passage
        else:
            ts_ms, state = payload
            memory["statuses"] = [s for s in memory["statuses"] if s[0] >= ts_ms - STATUS_RETENTION_MS] + [(ts_ms, state)]
            if state in ("OFFLINE", "DEGRADED"):
                self._open_bin(memory, ts_ms, ctx)  # a dead camera still gets bins that say so
            if state == "ONLINE":
                memory["ended"] = False  # the stream started again
            if state == "ENDED" and not memory["ended"]:
                memory["ended"] = True
                self._close_later(memory, ctx)
        self._save(engine, memory)

    def _frames_held_up(self, memory: dict, bin_start_ms: int, now_ms: int) -> bool:
        """The camera said it was ONLINE (or DEGRADED) after the bin ended, but its frames have not reached the bin's
        end: they are on their way (infer or Triton behind), so the bin waits, up to HOLD_MAX_MS."""
        end = bin_start_ms + self.bin_ms
        if now_ms > end + self.allowed_lateness_ms + HOLD_MAX_MS or memory.get("frame_ms", 0) >= end:
            return False
        later = [state for ts, state in memory["statuses"] if ts >= end]
        return bool(later) and later[-1] in ("ONLINE", "DEGRADED")

    def _close_later(self, memory: dict, ctx) -> None:
        memory["close_at"] = ctx.timer_service().current_processing_time() + self.ended_grace_ms
        ctx.timer_service().register_processing_time_timer(memory["close_at"])

    def on_timer(self, timestamp: int, ctx):
        engine, memory = self._load(ctx.get_current_key())
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            due = [start for start in memory["open_bins"] if start + self.bin_ms + self.allowed_lateness_ms <= timestamp]
            held = [start for start in due if self._frames_held_up(memory, start, timestamp)]
            if held:
                ctx.timer_service().register_event_time_timer(timestamp + RECHECK_MS)
                due = [start for start in due if start not in held]
        elif memory["ended"] and timestamp >= memory.get("close_at", 0):
            due = list(memory["open_bins"])  # the stream ended and its last frames are in: nothing more will come
        else:
            due = []
        for start in due:
            state = camera_state_during(memory["statuses"], start, start + self.bin_ms)
            for traffic_bin in engine.close_bin(start, state):
                yield "TrafficBin", traffic_bin
        memory["open_bins"] = [start for start in memory["open_bins"] if start not in due]
        self._save(engine, memory)


def build_pipeline(decoded, geometry_by_camera: dict[str, TrafficGeometry], bin_ms: int = 60_000,
                   ended_grace_ms: int = 10_000, allowed_lateness_ms: int = 10_000):
    """decoded: a DataStream of `decode` output (undecodable entries are dropped here) with event-time timestamps.
    Returns a DataStream of `(record_type, record)`: VehiclePassage and TrafficBin dicts."""
    return (decoded.filter(lambda value: value[0] is not None)
            .key_by(lambda value: value[0], key_type=Types.STRING())
            .process(Traffic(geometry_by_camera, bin_ms, ended_grace_ms, allowed_lateness_ms), output_type=PICKLED))


def encode(value):
    """(record type, record) → Row(key = camera id, Avro value) for the KafkaSink."""
    record_type, record = value
    return encode_stamped(record_type, record, "camera_id")
