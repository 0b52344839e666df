"""Bad input on every topic the services consume, against the real running services (infer, the re-ID embed service,
the sink, the drift and the evidence service on the real broker, Triton and ClickHouse store): an oversized message (a well-formed record padded past
the largest message a Vigil producer sends), a well-framed message of a writer schema the deployment does not know,
and garbage, followed by a good message. Each bad one is dead-lettered by every service that consumes its topic, with
its reason (a bad dead letter is dropped and logged: never dead-letter a dead letter); each good one after them is
still stored. On frames.v1 also FrameRefs whose frame in the store is corrupt, truncated or zero bytes: infer
dead-letters them as "frame unreadable" and detects the next good frame."""

from __future__ import annotations

import logging
import os
import time
import uuid

import cv2
import pytest

from tests.conftest import CAR_VIDEO, isolated_settings, running, wait_for_rows
from tests.fuzz.avro_strategies import example
from tests.fuzz.test_avro_properties import MYSTERY, single_object
from vigil.avro_codec import AvroCodec
from vigil.framestore import open_frame_store
from vigil.kafka_io import MESSAGE_MAX_BYTES, make_consumer, make_producer
from vigil.outputs.clickhouse_rows import TABLES
from vigil.topics import CAMERA_STATUS, DEADLETTER, DETECTIONS, EVENTS, FRAMES, INCIDENTS, TRACKS, TRAFFIC

pytestmark = pytest.mark.slow  # starts real servers

# topic -> the running services that consume it (as `running` starts them here)
CONSUMERS = {FRAMES: {"infer", "sink", "evidence"}, DETECTIONS: {"reid-embed", "sink", "drift", "evidence"},
             CAMERA_STATUS: {"sink"}, TRACKS: {"sink"}, EVENTS: {"sink"}, TRAFFIC: {"sink"},
             INCIDENTS: {"sink", "evidence"}, DEADLETTER: set()}
REASONS = {"oversized": "oversized: ", "unknown schema": "unknown writer schema fingerprint",
           "garbage": "not an Avro message"}
# what a plain example needs to be storable (a track's entry and exit points are x, y) and, for an incident, to be
# taken up by the evidence service (a first revision)
REALISTIC = {"TrackSummary": {"entry_xy": [10.0, 20.0], "exit_xy": [30.0, 40.0]},
             "Incident": {"revision": 1, "state": "open"}}
OVERSIZED = MESSAGE_MAX_BYTES + 200_000


def good_record(record_type: str, marker: str, now_ms: int, **overrides) -> dict:
    """A plain valid record whose every string (ids, camera id) is `marker`, so its row is found by it."""
    return {**example(record_type, marker, now_ms), **REALISTIC.get(record_type, {}), **overrides}


def padded(record_type: str, marker: str, now_ms: int) -> dict:
    """A valid record of `record_type` whose first string field holds OVERSIZED characters."""
    record = good_record(record_type, marker, now_ms)
    first = next(name for name, value in record.items() if isinstance(value, str))
    return {**record, first: marker + "x" * OVERSIZED}


@pytest.fixture(scope="module")
def bad_run(stack, tmp_path_factory):
    """Every bad message and then a good one on each topic, with the services running until the good ones are stored:
    (settings, what was sent per topic, the dead letters read, the services, the log records)."""
    from services.ingest.settings import IngestSettings

    settings = isolated_settings(stack, IngestSettings)
    codec, now_ms = AvroCodec(), int(time.time() * 1000)
    run = uuid.uuid4().hex[:6]
    producer = make_producer(settings, **{"message.max.bytes": 2 * OVERSIZED})
    sent: dict = {}
    camera = f"bad-{run}"
    store = open_frame_store(settings.frame_store_uri)
    capture = cv2.VideoCapture(str(CAR_VIDEO))
    ok, picture = capture.read()
    capture.release()
    assert ok
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    frames = {"corrupt": os.urandom(len(jpeg)), "truncated": jpeg[: len(jpeg) // 2], "zero-byte": b"", "good": jpeg}
    frame_refs = {}
    for sequence, (name, data) in enumerate(frames.items()):
        ts = now_ms + sequence * 200
        frame_refs[name] = good_record("FrameRef", camera, ts, frame_id=f"{camera}:{name}", sequence=sequence,
                                       width=picture.shape[1], height=picture.shape[0], encoding="jpeg",
                                       uri=store.put(camera, sequence, ts, data))
    for topic in CONSUMERS:
        record_type, marker = topic.records[0], f"{run}-{topic.name}"
        bad = {"oversized": codec.encode(record_type, padded(record_type, marker, now_ms)),
               "unknown schema": single_object(MYSTERY, {"camera_id": marker, "n": 7}),
               "garbage": b"garbage:" + os.urandom(64)}
        for value in bad.values():  # one key: one partition, so the good message comes after the bad ones
            producer.produce(topic.deployed(settings), key=camera.encode(), value=value)
        goods = ([frame_refs[name] for name in ("corrupt", "truncated", "zero-byte", "good")] if topic is FRAMES
                 else [good_record(record_type, marker, now_ms)])
        for record in goods:
            producer.produce(topic.deployed(settings), key=camera.encode(), value=codec.encode(record_type, record))
        # the row to find: the marker, or on frames.v1 the good frame's id
        sent[topic] = {"bad": bad, "good": goods,
                       "marker": frame_refs["good"]["frame_id"] if topic is FRAMES else marker}
        assert producer.flush(30) == 0
    # every (topic, bad kind, consumer) once, and infer's three unreadable frames
    expected = {(topic.deployed(settings), kind, service) for topic, services in CONSUMERS.items() for kind in REASONS
                for service in services}
    expected |= {(FRAMES.deployed(settings), f"unreadable {n}", "infer") for n in range(3)}

    def arrived() -> set:
        got, unreadable = set(), 0
        for letter in letters:
            kind = next((k for k, reason in REASONS.items() if reason in letter["reason"]), None)
            if kind is not None:
                got.add((letter["source_topic"], kind, letter["service"]))
            elif letter["service"] == "infer" and "frame unreadable" in letter["reason"]:
                got.add((letter["source_topic"], f"unreadable {unreadable}", "infer"))
                unreadable += 1
        return got

    consumer = make_consumer(settings, f"dlq-{run}", [DEADLETTER.deployed(settings)])
    letters, logged = [], []
    handler = logging.Handler()
    handler.emit = logged.append
    logging.getLogger("vigil.runtime").addHandler(handler)
    try:
        with running(settings, drift=True, evidence=True) as services:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not expected <= arrived():
                message = consumer.poll(0.5)
                if message is None or message.error() or message.value() in sent[DEADLETTER]["bad"].values():
                    continue
                letter = codec.decode(message.value(), expected="DeadLetter")
                if not letter["source_topic"].startswith(sent[DEADLETTER]["marker"]):  # not one this test sent
                    letters.append(letter)
            for topic, what in sent.items():
                table = TABLES[topic.records[0]]
                wait_for_rows(settings, f"SELECT count() FROM {table.name} WHERE {table.columns[0]} = {{m:String}}",
                              1, timeout_s=120, parameters={"m": what["marker"]})
            wait_for_rows(settings, "SELECT count() FROM detections WHERE frame_id = {f:String}", 1, timeout_s=120,
                          parameters={"f": frame_refs["good"]["frame_id"]})
            deadline = time.monotonic() + 60  # the drift and evidence services took the good records after the bad
            while time.monotonic() < deadline and not (services["drift"].stats()["frames"] >= 2
                                                        and services["evidence"].stats()["incidents"] >= 1):
                time.sleep(0.5)
    finally:
        logging.getLogger("vigil.runtime").removeHandler(handler)
        consumer.close()
    return settings, sent, frame_refs, letters, services, logged


def test_every_bad_message_is_dead_lettered_by_every_consumer_with_its_reason(bad_run):
    settings, sent, _, letters, _, _ = bad_run
    for topic, services in CONSUMERS.items():
        for kind, value in sent[topic]["bad"].items():
            mine = [letter for letter in letters if letter["source_topic"] == topic.deployed(settings)
                    and REASONS[kind] in letter["reason"]]
            assert {letter["service"] for letter in mine} == services, (topic.name, kind, mine and mine[0]["reason"])
            for letter in mine:
                if kind == "oversized":  # too big to carry whole: the start of it, and the reason says so
                    assert "kept as its first" in letter["reason"] and value.startswith(letter["value"])
                    assert len(letter["value"]) < MESSAGE_MAX_BYTES // 2
                else:
                    assert letter["value"] == value, "the original bytes are kept"
                assert letter["key"] == sent[FRAMES]["good"][0]["camera_id"].encode(), "the original key is kept"


def test_the_drift_and_evidence_services_go_on_with_the_good_records_after_the_bad(bad_run):
    _, _, _, _, services, _ = bad_run
    assert services["drift"].stats()["frames"] >= 2, "the good detection record, and infer's of the good frame"
    assert services["evidence"].stats()["incidents"] >= 1, "the good incident after the bad ones"


def test_a_bad_dead_letter_is_dropped_and_logged_not_dead_lettered_again(bad_run):
    settings, _, _, letters, services, logged = bad_run
    assert not [letter for letter in letters if letter["source_topic"] == DEADLETTER.deployed(settings)]
    assert services["sink"].dead_letters.dropped == 3
    dropped = [record.getMessage() for record in logged if "dropping" in record.getMessage()]
    assert len(dropped) == 3 and all(DEADLETTER.deployed(settings) in line for line in dropped), dropped


def test_the_good_message_after_the_bad_ones_is_stored_on_every_topic(bad_run):
    from vigil.store.client import connect

    settings, sent, _, _, _, _ = bad_run
    client = connect(settings)
    for topic, what in sent.items():
        table = TABLES[topic.records[0]]
        rows = client.query(f"SELECT count() FROM {table.name} FINAL WHERE {table.columns[0]} = {{m:String}}",
                            parameters={"m": what["marker"]}).result_rows[0][0]
        assert rows == 1, (topic.name, table.name)


def test_unreadable_frames_are_dead_lettered_and_the_next_good_frame_is_detected(bad_run):
    from vigil.store.client import connect

    settings, _, frame_refs, letters, _, _ = bad_run
    unreadable = {letter["value"]: letter["reason"] for letter in letters if letter["service"] == "infer"
                  and letter["reason"].startswith("frame unreadable")}
    codec = AvroCodec()
    by_frame = {codec.decode(value)["frame_id"]: reason for value, reason in unreadable.items()}
    for name in ("corrupt", "truncated", "zero-byte"):
        assert frame_refs[name]["frame_id"] in by_frame, (name, sorted(by_frame))
    assert "empty" in by_frame[frame_refs["zero-byte"]["frame_id"]]
    assert "not a decodable image" in by_frame[frame_refs["corrupt"]["frame_id"]]
    client = connect(settings)
    detected = client.query("SELECT groupArray(frame_id) FROM detections FINAL WHERE camera_id = {c:String}",
                            parameters={"c": frame_refs["good"]["camera_id"]}).result_rows[0][0]
    assert detected == [frame_refs["good"]["frame_id"]], "only the good frame was detected; none was lost"


def test_records_the_store_refuses_are_dead_lettered_with_the_reason_and_the_next_stored(stack):
    """Valid Avro that the tables' column types refuse (a negative width for a UInt16 column, a track whose entry
    point has one value): the sink dead-letters each with the store's reason and stores what comes after, instead of
    failing the whole insert and retrying it for ever."""
    from services.ingest.settings import IngestSettings

    settings = isolated_settings(stack, IngestSettings)
    codec, now_ms, camera = AvroCodec(), int(time.time() * 1000), f"poison-{uuid.uuid4().hex[:6]}"
    producer = make_producer(settings)
    for name, width in (("poison", -1), ("good", 768)):  # width is a UInt16 column; Avro's int allows -1
        record = good_record("FrameRef", camera, now_ms, frame_id=f"{camera}:{name}", width=width)
        producer.produce(FRAMES.deployed(settings), key=camera.encode(), value=codec.encode("FrameRef", record))
    for name, entry in (("short", [10.0]), ("whole", [10.0, 20.0])):
        record = good_record("TrackSummary", f"{camera}-{name}", now_ms, entry_xy=entry, exit_xy=[30.0, 40.0])
        producer.produce(TRACKS.deployed(settings), key=camera.encode(), value=codec.encode("TrackSummary", record))
    assert producer.flush(30) == 0
    consumer = make_consumer(settings, f"dlq-{camera}", [DEADLETTER.deployed(settings)])
    letters = []
    try:
        with running(settings, infer=False, reid=False):
            stored = wait_for_rows(settings, "SELECT count() FROM frames WHERE frame_id = {f:String}", 1,
                                   timeout_s=60, parameters={"f": f"{camera}:good"})
            table = TABLES["TrackSummary"]
            tracks = wait_for_rows(settings, f"SELECT count() FROM {table.name} WHERE {table.columns[0]} = {{m:String}}",
                                   1, timeout_s=60, parameters={"m": f"{camera}-whole"})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(letters) < 2:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                letter = codec.decode(message.value(), expected="DeadLetter")
                if letter["key"] == camera.encode():
                    letters.append(letter)
    finally:
        consumer.close()
    assert stored == 1, "the good frame after the refused one is stored"
    assert tracks == 1, "the whole track after the refused one is stored"
    by_topic = {letter["source_topic"]: letter for letter in letters}
    frame_letter, track_letter = by_topic[FRAMES.deployed(settings)], by_topic[TRACKS.deployed(settings)]
    assert frame_letter["service"] == "sink" and "frames.width: -1 is out of UInt16's range" in frame_letter["reason"]
    assert "entry" in track_letter["reason"] or "values for" in track_letter["reason"], track_letter["reason"]
