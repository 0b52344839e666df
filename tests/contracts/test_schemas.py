"""The Avro contracts: every schema parses and documents its fields, records round-trip, bad records are rejected with
a clear error, and each schema stays backward compatible with its released snapshots."""

import io
import json

import fastavro
import pytest
from fastavro.utils import generate_many

from vigil.avro_codec import AvroCodec, SchemaViolation, UndecodableMessage
from vigil.schemas import SCHEMA_DIR, contracts, inline_references, parse, released_snapshots

RECORDS = sorted(name for name in contracts() if "." not in name)
REQUIRED = {"FrameRef", "DetectionBatch", "CameraStatus", "AnomalyEvent", "ReidMatch", "TrackSummary", "TrackProgress"}

FRAME = dict(frame_id="cam-1:7:1700000000000", camera_id="cam-1", capture_ts_ms=1_700_000_000_000, sequence=7,
             width=768, height=432, encoding="jpeg", uri="file:///frames/cam-1/7.jpg", ingest_ts_ms=1_700_000_000_020,
             trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
QUALITY = dict(sharpness=180.5, contrast=11.75, still_ms=0, shift_px=3.5, shift_x_px=3.5, shift_y_px=0.0, similarity=0.875,
               detail=1.25, static_regions=[dict(x1=24.0, y1=62.0, x2=120.0, y2=110.0, area_px=3916.0, static_ms=6400)])


def _walk_fields(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:
                yield schema["name"], field
                yield from _walk_fields(field["type"])
        for key in ("items", "values"):
            if key in schema:
                yield from _walk_fields(schema[key])
    elif isinstance(schema, list):
        for branch in schema:
            yield from _walk_fields(branch)


def test_required_contracts_exist():
    assert REQUIRED <= set(RECORDS)


@pytest.mark.parametrize("name", RECORDS)
def test_every_field_is_documented(name):
    schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    assert schema.get("doc"), f"{name} has no record doc"
    undocumented = [f"{record}.{field['name']}" for record, field in _walk_fields(schema) if not field.get("doc")]
    assert not undocumented


@pytest.mark.parametrize("name", RECORDS)
def test_generated_records_round_trip(name):
    codec = AvroCodec()
    for record in generate_many(contracts()[name].schema, 20):
        record = _strip_logical(record)
        assert _float32(codec.decode(codec.encode(name, record), expected=name)) == _float32(record)


def _float32(record):
    """Avro `float` is 32-bit: compare at that precision."""
    import numpy as np

    if isinstance(record, dict):
        return {k: _float32(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_float32(v) for v in record]
    return np.float32(record) if isinstance(record, float) else record


def _strip_logical(record):
    """generate_many yields datetimes for timestamp-millis; Vigil passes epoch milliseconds everywhere."""
    import datetime

    if isinstance(record, dict):
        return {k: _strip_logical(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_strip_logical(v) for v in record]
    if isinstance(record, datetime.datetime):
        return int(record.timestamp() * 1000)
    return record


def test_detection_batch_sample_round_trips_with_single_object_encoding():
    codec = AvroCodec()
    batch = dict(batch_id=FRAME["frame_id"], frame={**FRAME, "quality": QUALITY}, model_name="motion_detector",
                 model_version="1", xyxy=[10.0, 20.0, 110.0, 220.0], class_id=[2], confidence=[0.75], track_id=[3],
                 inference_ts_ms=1_700_000_000_050, ended_track_ids=[1])
    data = codec.encode("DetectionBatch", batch)
    assert data[:2] == b"\xc3\x01" and data[2:10] == contracts()["DetectionBatch"].fingerprint
    assert codec.decode(data, expected="DetectionBatch") == batch


def test_detection_batch_written_before_ended_track_ids_decodes_with_none_ended():
    """Records infer wrote before v2 (no `ended_track_ids`) still reach the re-ID embed service, with nothing ended."""
    from vigil.schemas import Contract

    everything = {c.name: c.schema for c in contracts().values()}
    _, released = released_snapshots()["DetectionBatch"][0]
    old = Contract("DetectionBatch.v1", inline_references(released, everything), parse(inline_references(released, everything)))
    record = {"batch_id": FRAME["frame_id"], "frame": FRAME, "model_name": "motion_detector", "model_version": "1",
              "xyxy": [], "class_id": [], "confidence": [], "track_id": [], "inference_ts_ms": 1_700_000_000_050}
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + old.fingerprint)
    fastavro.schemaless_writer(buffer, old.parsed, record)
    assert AvroCodec().decode(buffer.getvalue(), expected="DetectionBatch") == {
        **record, "frame": {**FRAME, "quality": None}, "ended_track_ids": []}


def _released(name: str, version: int):
    from vigil.schemas import Contract

    everything = {c.name: c.schema for c in contracts().values()}
    path, released = next((p, s) for p, s in released_snapshots()[name] if p.stem.endswith(f".v{version}"))
    standalone = inline_references(released, everything)
    return Contract(path.stem, standalone, parse(standalone))


def test_frame_ref_written_before_quality_decodes_with_no_quality():
    """FrameRefs and DetectionBatches ingest and infer wrote before FrameRef v2 (no `quality`) still decode, with the
    picture-quality figures null: the bad-video rules then judge nothing on them."""
    for name, version, record in (("FrameRef", 1, FRAME),
                                  ("DetectionBatch", 2, {"batch_id": FRAME["frame_id"], "frame": FRAME,
                                                         "model_name": "m", "model_version": "1", "xyxy": [],
                                                         "class_id": [], "confidence": [], "track_id": [],
                                                         "inference_ts_ms": 1, "ended_track_ids": [4]})):
        old = _released(name, version)
        buffer = io.BytesIO()
        buffer.write(b"\xc3\x01" + old.fingerprint)
        fastavro.schemaless_writer(buffer, old.parsed, record)
        decoded = AvroCodec().decode(buffer.getvalue(), expected=name)
        assert (decoded if name == "FrameRef" else decoded["frame"])["quality"] is None
        assert decoded == ({**record, "quality": None} if name == "FrameRef" else {**record, "frame": {**FRAME, "quality": None}})


def test_frame_ref_quality_round_trips_and_is_validated():
    codec = AvroCodec()
    frame = {**FRAME, "quality": QUALITY}
    assert _float32(codec.decode(codec.encode("FrameRef", frame), expected="FrameRef")) == _float32(frame)
    before_reference = {**QUALITY, "shift_px": None, "shift_x_px": None, "shift_y_px": None, "similarity": None,
                        "detail": None}
    assert codec.decode(codec.encode("FrameRef", {**FRAME, "quality": before_reference}))["quality"] == before_reference
    with pytest.raises(SchemaViolation, match="still_ms"):
        codec.encode("FrameRef", {**FRAME, "quality": {**QUALITY, "still_ms": "long"}})
    # the released snapshots are the schemas as released: FrameRef v3 and DetectionBatch v4 are today's
    assert _released("FrameRef", 3).fingerprint == contracts()["FrameRef"].fingerprint
    assert _released("DetectionBatch", 4).fingerprint == contracts()["DetectionBatch"].fingerprint


def test_frame_ref_written_before_static_regions_decodes_with_none():
    """FrameRefs and DetectionBatches written with FrameRef v2 (quality without `static_regions`) still decode, with no
    static regions: the debris rule then sees nothing static on them."""
    v2_quality = {k: v for k, v in QUALITY.items() if k != "static_regions"}
    for name, version, record in (("FrameRef", 2, {**FRAME, "quality": v2_quality}),
                                  ("DetectionBatch", 3, {"batch_id": FRAME["frame_id"],
                                                         "frame": {**FRAME, "quality": v2_quality},
                                                         "model_name": "m", "model_version": "1", "xyxy": [],
                                                         "class_id": [], "confidence": [], "track_id": [],
                                                         "inference_ts_ms": 1, "ended_track_ids": []})):
        old = _released(name, version)
        buffer = io.BytesIO()
        buffer.write(b"\xc3\x01" + old.fingerprint)
        fastavro.schemaless_writer(buffer, old.parsed, record)
        decoded = AvroCodec().decode(buffer.getvalue(), expected=name)
        assert (decoded if name == "FrameRef" else decoded["frame"])["quality"]["static_regions"] == []


def test_static_regions_round_trip_into_video_quality():
    from vigil.detections import StaticRegion, VideoQuality

    codec = AvroCodec()
    frame = {**FRAME, "quality": QUALITY}
    decoded = codec.decode(codec.encode("FrameRef", frame), expected="FrameRef")
    quality = VideoQuality.from_record(decoded["quality"])
    assert quality.static_regions == (StaticRegion(x1=24.0, y1=62.0, x2=120.0, y2=110.0, area_px=3916.0,
                                                   static_ms=6400),)
    assert VideoQuality.from_record(quality.to_record()) == quality
    with pytest.raises(SchemaViolation, match="static_ms"):
        codec.encode("FrameRef", {**FRAME, "quality": {**QUALITY, "static_regions": [
            {**QUALITY["static_regions"][0], "static_ms": "long"}]}})


def test_record_that_breaks_its_schema_is_rejected_with_the_field_named():
    codec = AvroCodec()
    with pytest.raises(SchemaViolation, match=r"FrameRef.*width"):
        codec.encode("FrameRef", {**FRAME, "width": "wide"})
    with pytest.raises(SchemaViolation, match=r"camera_id"):
        codec.encode("FrameRef", {k: v for k, v in FRAME.items() if k != "camera_id"})
    with pytest.raises(SchemaViolation, match="unknown record type"):
        codec.encode("NoSuchRecord", {})


@pytest.mark.parametrize("data, reason", [
    (b"", "too short"),
    (b"not avro at all", "not an Avro message"),
    (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown writer schema"),
])
def test_undecodable_bytes_say_why(data, reason):
    with pytest.raises(UndecodableMessage, match=reason):
        AvroCodec().decode(data)


def test_truncated_body_and_wrong_type_are_rejected():
    codec = AvroCodec()
    data = codec.encode("FrameRef", FRAME)
    with pytest.raises(UndecodableMessage, match="corrupt"):
        codec.decode(data[:-12])
    with pytest.raises(UndecodableMessage, match="expected a DetectionBatch"):
        codec.decode(data, expected="DetectionBatch")


@pytest.mark.parametrize("name", RECORDS)
def test_has_a_released_snapshot(name):
    assert name in released_snapshots(), f"release {name}: copy its inlined schema to schemas/released/{name}.v1.avsc"


@pytest.mark.parametrize("name", RECORDS)
def test_backward_compatible_with_every_released_version(name):
    """Data written with any released version must decode with today's schema (the reader)."""
    current = contracts()[name]
    everything = {c.name: c.schema for c in contracts().values()}
    for path, released in released_snapshots().get(name, []):
        writer = parse(inline_references(released, everything))
        for record in generate_many(writer, 30):
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, writer, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, writer, current.parsed)  # raises SchemaResolutionError if incompatible


def test_compatibility_check_catches_a_breaking_change():
    """The check above is not vacuous: adding a field without a default breaks old data."""
    everything = {c.name: c.schema for c in contracts().values()}
    released = released_snapshots()["FrameRef"][-1][1]
    broken = json.loads(json.dumps(released))
    broken["fields"].append({"name": "lens", "type": "string", "doc": "new, no default"})
    writer = parse(inline_references(released, everything))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, writer, next(iter(generate_many(writer, 1))))
    buffer.seek(0)
    with pytest.raises(Exception, match="lens"):
        fastavro.schemaless_reader(buffer, writer, parse(broken))


def test_old_writer_message_decodes_into_current_shape():
    """A message framed with a released fingerprint is resolved through the snapshot, not rejected."""
    codec = AvroCodec()
    _, released = released_snapshots()["CameraStatus"][0]
    from vigil.schemas import Contract

    everything = {c.name: c.schema for c in contracts().values()}
    old = Contract("CameraStatus.v1", inline_references(released, everything), parse(inline_references(released, everything)))
    record = dict(status_id="cam-1:ONLINE:1", camera_id="cam-1", ts_ms=1, state="ONLINE", frames_decoded=1,
                  frames_published=1, decode_errors=0, reconnects=0, actual_fps=10.0, message=None)
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + old.fingerprint)
    fastavro.schemaless_writer(buffer, old.parsed, record)
    assert codec.decode(buffer.getvalue())["camera_id"] == "cam-1"
