"""The re-identification job (PyFlink DataStream): `tracks.v1` → keyed by site → sliding event-time windows →
topology-gated cosine candidates → Hungarian one-to-one assignment → `ReidMatch` on `events.v1`.

    source (KafkaSource, Kafka record time = the track's last_seen, bounded out-of-orderness watermarks)
      → decode → key by site → sliding window (size ≥ max transit + summary interval, slide = decision cadence)
      → match (IdentityState in keyed state: chains and global ids persist across windows and restarts)
      → encode → KafkaSink

tracks.v1 also carries TrackProgress heartbeats from infer (Kafka timestamp = how far it has processed a camera), so
the watermark advances (and windows close) while no track ends; they are dropped after the watermark step.
A window sees every summary of its site whose last_seen lies in it; tracks already matched in a role (a successor for
`from`, a predecessor for `to`) are skipped, so overlapping windows never emit a pair twice. The topology lives in
`build_pipeline(stream)`, free of connectors, so tests run it on `from_collection`.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream.functions import ProcessWindowFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import SlidingEventTimeWindows

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


class MatchWindow(ProcessWindowFunction):
    """Matches one site's window of summaries; the site's IdentityState lives in per-key (not per-window) state."""

    def __init__(self, topology: Topology, config: MatchConfig):
        self.topology, self.config = topology, config

    def open(self, runtime_context: RuntimeContext):
        self.descriptor = ValueStateDescriptor("identities", PICKLED)

    def process(self, key, context, elements):
        state_handle = context.global_state().get_state(self.descriptor)
        state = state_handle.value() or IdentityState()
        records = match([summary for _, summary in elements], self.topology, state, self.config)
        state_handle.update(state)
        yield from records

    def clear(self, context):
        pass


def build_pipeline(summaries, topology: Topology, window_ms: int = 120_000, slide_ms: int = 5_000,
                   config: MatchConfig | None = None):
    """summaries: a DataStream of decoded records (`decode_summary` output) with event-time timestamps and
    watermarks. Returns a DataStream of ReidMatch dicts."""
    site_of = dict(topology.sites)
    return (summaries.filter(is_summary).key_by(lambda value: site_of.get(value[0], "default"), key_type=Types.STRING())
            .window(SlidingEventTimeWindows.of(Time.milliseconds(window_ms), Time.milliseconds(slide_ms)))
            .process(MatchWindow(topology, config or MatchConfig()), output_type=PICKLED))


def encode_match(record: dict):
    """ReidMatch dict → Row(key = global id, Avro value) for the KafkaSink, stamped with the emission time."""
    return encode_stamped("ReidMatch", record, "global_id")
