"""The re-identification job (PyFlink DataStream): `tracks.v1` → keyed by site → sliding event-time windows →
topology-gated cosine candidates → Hungarian one-to-one assignment → `ReidMatch` on `events.v1`.

    source (KafkaSource, Kafka record time = the track's last_seen, bounded out-of-orderness watermarks)
      → decode → key by site → SiteMatcher (sliding windows: size ≥ max transit + summary interval, slide = decision
        cadence; plus an idle flush) → match (IdentityState in keyed state: chains and global ids persist across
        windows and restarts) → encode → KafkaSink

tracks.v1 also carries TrackProgress heartbeats from infer (Kafka timestamp = how far it has processed a camera), so
the watermark advances (and windows close) while no track ends; they are dropped after the watermark step.
A window sees every summary of its site whose last_seen lies in it; tracks already matched in a role (a successor for
`from`, a predecessor for `to`) are skipped, so overlapping windows never emit a pair twice.

Idle and ending sites: when every camera of a site goes quiet (streams ended, cameras offline, a site at night) no
heartbeat moves event time and the last windows would never close. So once a site has received no summary for
`idle_flush_ms` of processing time, SiteMatcher decides over every summary it still holds, as if their windows had
closed; the later windows (if event time ever moves again) skip what that flush matched. Summaries arriving after
their windows closed are kept for the next decision instead of dropped. The topology lives in
`build_pipeline(stream)`, free of connectors, so tests run it on `from_collection`.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from jobs.reid.matching import IdentityState, MatchConfig, Summary, match
from vigil.avro_codec import UndecodableMessage
from vigil.flink_env import encode_stamped, worker_codec
from vigil.topology import Topology

PICKLED = Types.PICKLED_BYTE_ARRAY()
BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())


HEARTBEAT = "\x00heartbeat"


def decode_summary(value: bytes):
    """TrackSummary Avro → `(camera_id, Summary)`; TrackProgress → `(HEARTBEAT, None)` (it only advances event time:
    its Kafka timestamp is how far infer has processed the camera); undecodable input → `(None, reason, raw bytes)`."""
    codec = worker_codec()
    try:
        if codec.record_type(bytes(value)) == "TrackProgress":
            return HEARTBEAT, None
        record = codec.decode(bytes(value), expected="TrackSummary")
    except UndecodableMessage as exc:
        return None, str(exc), bytes(value)
    return record["camera_id"], Summary.from_record(record)


def is_summary(value) -> bool:
    return value[0] is not None and value[0] != HEARTBEAT


class SiteMatcher(KeyedProcessFunction):
    """One site's summaries in keyed state, decided in sliding event-time windows [end - window, end) at every
    multiple of `slide_ms` that event time passes, and all at once after `idle_flush_ms` (processing time) without a
    new summary. The site's IdentityState lives beside them, so identities persist across windows and restarts."""

    def __init__(self, topology: Topology, config: MatchConfig, window_ms: int, slide_ms: int, idle_flush_ms: int):
        self.topology, self.config = topology, config
        self.window_ms, self.slide_ms, self.idle_flush_ms = window_ms, slide_ms, idle_flush_ms

    def open(self, runtime_context: RuntimeContext):
        self.identities = runtime_context.get_state(ValueStateDescriptor("identities", PICKLED))
        self.pending = runtime_context.get_state(ValueStateDescriptor("pending", PICKLED))  # {"summaries", "flush_at"}

    def _first_end(self, ts_ms: int) -> int:
        """The end of the earliest window holding an element at ts_ms."""
        return ts_ms - ts_ms % self.slide_ms + self.slide_ms

    def _decide(self, summaries) -> list[dict]:
        state = self.identities.value() or IdentityState()
        records = match(summaries, self.topology, state, self.config)
        self.identities.update(state)
        return records

    def process_element(self, value, ctx):
        pending = self.pending.value() or {"summaries": [], "flush_at": 0}
        ts_ms = ctx.timestamp()
        pending["summaries"].append((ts_ms, value[1]))
        timers = ctx.timer_service()
        # Flink keeps one timer per key and time: this is the earliest window end this summary belongs to (an already
        # closed one fires with the next watermark, so a late summary still gets decided).
        timers.register_event_time_timer(self._first_end(ts_ms) - 1)
        if self.idle_flush_ms > 0:
            pending["flush_at"] = timers.current_processing_time() + self.idle_flush_ms
            timers.register_processing_time_timer(pending["flush_at"])
        self.pending.update(pending)

    def on_timer(self, timestamp: int, ctx):
        pending = self.pending.value()
        if not pending or not pending["summaries"]:
            return
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            if timestamp >= pending["flush_at"]:  # no summary since this timer was set: the site is idle
                yield from self._decide([summary for _, summary in pending["summaries"]])
            return
        end = timestamp + 1
        inside = [summary for ts, summary in pending["summaries"] if end - self.window_ms <= ts < end]
        if inside:
            yield from self._decide(inside)
        # Only summaries that later windows still hold stay: ts >= (next end) - window.
        pending["summaries"] = [(ts, s) for ts, s in pending["summaries"] if ts >= end + self.slide_ms - self.window_ms]
        if pending["summaries"]:
            earliest = min(ts for ts, _ in pending["summaries"])
            ctx.timer_service().register_event_time_timer(max(end + self.slide_ms, self._first_end(earliest)) - 1)
        self.pending.update(pending)


def build_pipeline(summaries, topology: Topology, window_ms: int = 120_000, slide_ms: int = 5_000,
                   config: MatchConfig | None = None, idle_flush_ms: int = 0):
    """summaries: a DataStream of decoded records (`decode_summary` output) with event-time timestamps and
    watermarks. `idle_flush_ms` > 0: a site without new summaries for that long (processing time) is decided at once.
    Returns a DataStream of ReidMatch dicts."""
    site_of = dict(topology.sites)
    return (summaries.filter(is_summary).key_by(lambda value: site_of.get(value[0], "default"), key_type=Types.STRING())
            .process(SiteMatcher(topology, config or MatchConfig(), window_ms, slide_ms, idle_flush_ms),
                     output_type=PICKLED))


def encode_match(record: dict):
    """ReidMatch dict → Row(key = global id, Avro value) for the KafkaSink, stamped with the emission time."""
    return encode_stamped("ReidMatch", record, "global_id")
