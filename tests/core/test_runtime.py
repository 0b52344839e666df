"""The service runtime on the real broker: records reach the handler decoded, bad ones become dead letters with their
reason, and offsets move only after every output flushed: an output that cannot flush loses nothing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from vigil.avro_codec import AvroCodec
from vigil.kafka_io import ensure_topics, make_consumer, make_producer
from vigil.outputs.base import Output
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, Handler, StreamService, retry
from vigil.topics import CAMERA_STATUS, DEADLETTER, FRAMES


class Collected(Output):
    """An output plug-in that keeps what it is given; `durable=False` models a receiver that never acknowledges."""

    name = "collected"

    def __init__(self, durable: bool = True):
        self.durable, self.buffer, self.kept = durable, [], []

    def write(self, topic, record_type, record, key=None, timestamp_ms=None):
        self.buffer.append(record["frame_id"])

    def pending(self):
        return len(self.buffer)

    def flush(self, stop=None):
        if not self.durable:
            return False
        self.kept += self.buffer
        self.buffer = []
        return True


class Forward(Handler):
    def __init__(self, output):
        self.output, self.seen = output, 0

    def handle(self, batch, stop):
        for incoming in batch:
            self.seen += 1
            self.output.write(incoming.topic, incoming.record_type, incoming.record)
        return True


def frame(i: int) -> dict:
    return dict(frame_id=f"cam:{i}", camera_id="cam", capture_ts_ms=1_700_000_000_000 + i, sequence=i, width=8,
                height=8, encoding="jpeg", uri="file:///dev/null", ingest_ts_ms=0, trace_context={})


def run_once(settings, output, group, seconds=4.0):
    kafka = KafkaOutput(settings)
    dead_letters = DeadLetters(kafka, "runtime-test", settings)
    service = StreamService(settings, "runtime-test", [FRAMES], Forward(output), [output, kafka], dead_letters, group,
                            batch_size=10, poll_timeout_s=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(30)
    return service


def test_retry_backs_off_until_the_call_succeeds_or_the_service_stops():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    assert retry(flaky, threading.Event(), "flaky", initial_s=0.01) == (True, "up")
    stopped = threading.Event()
    stopped.set()
    assert retry(lambda: 1 / 0, stopped, "never", initial_s=0.01) == (False, None)


@pytest.mark.slow
def test_offsets_move_only_after_every_output_flushed(pipeline_settings):
    settings = pipeline_settings
    ensure_topics(settings)
    codec, producer = AvroCodec(), make_producer(settings)
    for i in range(5):
        producer.produce(FRAMES.deployed(settings), key=b"cam", value=codec.encode("FrameRef", frame(i)))
    producer.produce(FRAMES.deployed(settings), key=b"cam", value=b"\x00\x01 not avro")
    status = dict(status_id="s", camera_id="cam", ts_ms=1, state="ONLINE", frames_decoded=0, frames_published=0,
                  decode_errors=0, reconnects=0, actual_fps=0.0, message=None)
    producer.produce(FRAMES.deployed(settings), key=b"cam", value=codec.encode("CameraStatus", status))
    producer.flush(10)
    group = f"runtime-{uuid.uuid4().hex[:6]}"

    stuck = Collected(durable=False)
    first = run_once(settings, stuck, group)
    assert first.handler.seen == 5 and stuck.kept == []  # handled, never acknowledged → not committed

    good = Collected()
    second = run_once(settings, good, group)
    assert sorted(good.kept) == [f"cam:{i}" for i in range(5)], "the unacknowledged records come again"
    assert second.dead_letters.count == 2

    third = run_once(settings, Collected(), group, seconds=3.0)
    assert third.handler.seen == 0, "committed after the good flush"

    consumer = make_consumer(settings, f"dlq-{uuid.uuid4().hex[:6]}", [DEADLETTER.deployed(settings)])
    letters, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline and len(letters) < 4:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            letters.append(codec.decode(message.value(), expected="DeadLetter"))
    consumer.close()
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("expected a FrameRef message on frames.v1, got CameraStatus" in r for r in reasons)
    assert any("not an Avro message" in r for r in reasons)
    assert CAMERA_STATUS.deployed(settings) not in {letter["source_topic"] for letter in letters}


class Batches(Forward):
    def __init__(self, output):
        super().__init__(output)
        self.sizes = []

    def handle(self, batch, stop):
        self.sizes.append(len(batch))
        return super().handle(batch, stop)


@pytest.mark.slow
def test_greedy_batches_hand_over_what_arrived_without_waiting_to_fill_a_batch(pipeline_settings):
    """infer's consumption: one frame is detected as soon as it is there, not once a batch of 8 filled or the poll
    timed out (the wait that was half the 2-camera latency); a backlog is still taken in full batches."""
    settings = pipeline_settings
    ensure_topics(settings)
    codec, producer = AvroCodec(), make_producer(settings)

    def send(first, count):
        for i in range(first, first + count):
            producer.produce(FRAMES.deployed(settings), key=b"cam", value=codec.encode("FrameRef", frame(i)))
        producer.flush(10)

    kafka, output = KafkaOutput(settings), Collected()
    handler = Batches(output)
    # a poll timeout far longer than the test waits: without greedy batches the lone record would sit in it
    service = StreamService(settings, "greedy-test", [FRAMES], handler, [output, kafka],
                            DeadLetters(kafka, "greedy-test", settings), f"greedy-{uuid.uuid4().hex[:6]}",
                            batch_size=8, poll_timeout_s=120, greedy_batches=True)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()

    def wait_for(seen):
        deadline = time.monotonic() + 60
        while handler.seen < seen and time.monotonic() < deadline:
            time.sleep(0.1)
        return handler.seen

    send(0, 1)
    assert wait_for(1) == 1, "a lone record was held back to fill a batch"
    assert handler.sizes == [1]
    send(1, 20)
    assert wait_for(21) == 21
    assert max(handler.sizes) <= 8 and max(handler.sizes[1:]) > 1, handler.sizes  # the backlog came in batches
    stop.set()
    send(21, 1)  # wakes the consumer's wait so the loop sees stop
    thread.join(60)
    assert not thread.is_alive()
    assert sorted(output.kept, key=lambda f: int(f.split(":")[1]))[:21] == [f"cam:{i}" for i in range(21)]
