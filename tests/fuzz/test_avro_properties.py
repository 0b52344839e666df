"""The Avro codec under generated input (hypothesis, derandomized so CI is deterministic): every record type round-trips
from records drawn over its whole schema, and arbitrary bytes, truncations and bit flips of valid messages, and
messages framed for a writer schema or registry id this deployment does not know, either decode or raise
UndecodableMessage: nothing else escapes, and nothing hangs."""

from __future__ import annotations

import io
import json
import struct
import time

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.avro_strategies import example, records
from vigil.avro_codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MARKER, AvroCodec, UndecodableMessage
from vigil.schemas import Contract, contracts, parse

RECORD_TYPES = sorted(name for name in contracts() if "." not in name)
CODEC = AvroCodec()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOWEST_DECODE_S = 2.0  # a decode of a few hundred bytes takes microseconds; seconds would mean a runaway loop


def decodes_or_refuses(codec: AvroCodec, data: bytes) -> dict | None:
    """decode() and record_type() of `data`: the record, or None when refused; anything but UndecodableMessage fails."""
    began = time.perf_counter()
    try:
        record = codec.decode(data)
        assert isinstance(record, dict)
        assert codec.record_type(data) in RECORD_TYPES
    except UndecodableMessage as exc:
        assert str(exc), "the refusal says why"
        record = None
    assert time.perf_counter() - began < SLOWEST_DECODE_S
    return record


# Every record type, drawn over its whole schema, with one encoded message of it.
valid_messages = st.sampled_from(RECORD_TYPES).flatmap(
    lambda name: records(name).map(lambda record: (name, record, CODEC.encode(name, record))))


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_record_type_round_trips(record_type):
    @FUZZ
    @given(records(record_type))
    def round_trip(record):
        data = CODEC.encode(record_type, record)
        assert CODEC.record_type(data) == record_type
        assert CODEC.decode(data, expected=record_type) == record

    round_trip()


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_the_reason(data):
    decodes_or_refuses(CODEC, data)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bodies_behind_a_known_fingerprint_are_refused_or_decoded(body):
    """The framing is right (marker and a real writer fingerprint): only the body is garbage."""
    for name in ("FrameRef", "DetectionBatch", "TrackSummary", "Incident"):
        decodes_or_refuses(CODEC, SINGLE_OBJECT_MARKER + contracts()[name].fingerprint + body)


@FUZZ
@given(valid_messages, st.data())
def test_a_truncated_message_is_refused(message, data):
    name, _, encoded = message
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(UndecodableMessage):
        CODEC.decode(encoded[:cut])


@FUZZ
@given(valid_messages, st.data())
def test_bit_flips_decode_or_are_refused(message, data):
    _, _, encoded = message
    flipped = bytearray(encoded)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        bit = data.draw(st.integers(0, len(flipped) * 8 - 1), label="bit")
        flipped[bit // 8] ^= 1 << (bit % 8)
    decodes_or_refuses(CODEC, bytes(flipped))


MYSTERY = {"type": "record", "name": "Mystery", "namespace": "vigil.v1", "doc": "A record no contract defines.",
           "fields": [{"name": "camera_id", "type": "string"}, {"name": "n", "type": "long"}]}


def single_object(schema: dict, record: dict) -> bytes:
    """`record` in single-object encoding under `schema`'s own fingerprint: well framed, unknown to the deployment."""
    parsed = parse(schema)
    buffer = io.BytesIO()
    buffer.write(SINGLE_OBJECT_MARKER + Contract("x", schema, parsed).fingerprint)
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def test_a_well_framed_message_of_an_unknown_writer_schema_is_refused():
    data = single_object(MYSTERY, {"camera_id": "cam-1", "n": 7})
    with pytest.raises(UndecodableMessage, match="unknown writer schema fingerprint"):
        CODEC.decode(data)
    with pytest.raises(UndecodableMessage):
        CODEC.record_type(data)


class Registry:
    """A Schema Registry that knows a few schema ids (the Confluent client's get_schema, in memory)."""

    class Registered:
        def __init__(self, schema):
            self.schema_str = json.dumps(schema)

    def __init__(self, schemas: dict[int, dict | str]):
        self.schemas = schemas

    def get_schema(self, schema_id: int):
        if schema_id not in self.schemas:
            raise LookupError(f"Schema {schema_id} not found (40403)")
        return self.Registered(self.schemas[schema_id])


def registry_codec() -> AvroCodec:
    """A codec reading the Confluent wire format against an in-memory registry: id 1 is FrameRef, 2 a record no
    contract defines, 3 not a record at all."""
    codec = AvroCodec()
    codec._registry = Registry({1: contracts()["FrameRef"].schema, 2: MYSTERY, 3: "string"})
    return codec


REGISTRY_CODEC = registry_codec()


def confluent(schema_id: int, body: bytes) -> bytes:
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + body


def test_registry_ids_it_does_not_know_or_that_are_no_vigil_record_are_refused():
    codec = registry_codec()
    frame = example("FrameRef", "cam-1", 1_700_000_000_000)
    body = CODEC.encode("FrameRef", frame)[10:]
    assert codec.decode(confluent(1, body)) == frame and codec.record_type(confluent(1, body)) == "FrameRef"
    refusals = ((9, "schema id 9 not found"), (2, "schema id 2 is vigil.v1.Mystery, no Vigil record type"),
                (3, "schema id 3 is not a record"))
    for schema_id, reason in refusals:
        for call in (codec.decode, codec.record_type):
            with pytest.raises(UndecodableMessage, match=reason):
                call(confluent(schema_id, b"\x0acam-1\x0e"))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.binary(max_size=120))
def test_arbitrary_confluent_frames_are_refused_or_decoded(schema_id, body):
    decodes_or_refuses(REGISTRY_CODEC, confluent(schema_id % 5, body))
    decodes_or_refuses(REGISTRY_CODEC, confluent(schema_id, body))
