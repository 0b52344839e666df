"""The embedded broker's two storage modes against the real Tansu (and, for s3, a real SeaweedFS): with
kafka_storage=s3 a SIGKILL of the broker in the middle of a stream loses no acknowledged message and no committed
offset, and so does a SIGKILL of the broker and its store together; with memory the same kill loses both, which is
what the README says each mode loses. Completeness is decided by counting what arrives, never from offsets (Tansu
reports a wrong end offset)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from app.stack import manager
from app.stack.components import Broker, BrokerStore
from app.stack.process import free_port
from vigil.config import Settings
from vigil.kafka_io import make_consumer, make_producer

pytestmark = pytest.mark.slow  # starts real servers

TOPIC = "frames.v1"


def private(tmp_path, storage: str) -> Settings:
    return Settings(data_dir=tmp_path / storage, kafka_storage=storage, kafka_bootstrap=f"127.0.0.1:{free_port()}",
                    kafka_s3_port=free_port(), clickhouse_port=free_port(), topic_namespace=f"d{uuid.uuid4().hex[:4]}.")


def kill(part) -> None:
    os.kill(part.process.pid(), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while part.process.running() and time.monotonic() < deadline:
        time.sleep(0.1)


def restart(settings: Settings, *parts) -> None:
    for part in parts:
        part.start()
        part.wait_ready(60)


def read_all(settings: Settings, group: str, idle_s: float = 6.0, timeout_s: float = 90.0) -> list[str]:
    """Every value the group gets until nothing new arrives for idle_s; commits what it read."""
    consumer = make_consumer(settings, group, [settings.topic(TOPIC)])
    values, deadline = [], time.monotonic() + timeout_s
    try:
        while not consumer.assignment() and time.monotonic() < deadline:  # the group join (Tansu: ~half the session)
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                values.append(message.value().decode())
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(message.value().decode())
            last_new = time.monotonic()
        if values:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def stream_through_a_kill(settings: Settings, victims) -> tuple[set[str], set[str], list[str]]:
    """Produce 3000 messages while `victims` are SIGKILLed after the first 1000 and restarted; returns (every id the
    broker acknowledged, the 500 ids a group read and committed before the kill, what that group read after it)."""
    producer = make_producer(settings, **{"message.timeout.ms": 120_000, "retry.backoff.ms": 200})
    acknowledged, lock = set(), threading.Lock()

    def delivered(err, message):
        if err is None:
            with lock:
                acknowledged.add(message.value().decode())

    def produce(first, last):
        for i in range(first, last):
            producer.produce(settings.topic(TOPIC), key=b"cam", value=f"m{i:05d}".encode(), on_delivery=delivered)
            producer.poll(0)
            if i % 100 == 0:
                time.sleep(0.02)

    produce(0, 1000)
    assert producer.flush(30) == 0
    # a group reads and commits 500 ... then the kill, with messages in flight
    consumer = make_consumer(settings, "durable-group", [settings.topic(TOPIC)])
    got = []
    while len(got) < 500:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            got.append(message.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    writer = threading.Thread(target=produce, args=(1000, 3000))
    writer.start()
    time.sleep(0.3)
    for part in victims:
        kill(part)
    time.sleep(1.0)
    restart(settings, *reversed(victims))
    writer.join()
    producer.flush(150)
    resumed = read_all(settings, "durable-group")
    return acknowledged, set(got), resumed


@pytest.mark.parametrize("victims", ["broker", "broker and store"])
def test_s3_storage_keeps_every_acknowledged_message_and_committed_offset(tmp_path, victims):
    settings = private(tmp_path, "s3")
    manager.up(settings, only=["broker"], log=lambda *_: None)
    store, broker = BrokerStore(settings), Broker(settings)
    try:
        parts = [broker] if victims == "broker" else [broker, store]
        acknowledged, before_kill, resumed = stream_through_a_kill(settings, parts)
        assert len(acknowledged) >= 2000, "the producer got through the restart"
        assert not before_kill & set(resumed), "the committed offset survived: nothing read before the kill again"
        everything = set(read_all(settings, f"fresh-{uuid.uuid4().hex[:4]}"))
        lost = acknowledged - everything
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
        assert before_kill | set(resumed) >= acknowledged, "the group resumed where it stopped and read the rest"
    finally:
        manager.down(settings)


def test_memory_storage_loses_messages_and_offsets_on_a_kill(tmp_path):
    settings = private(tmp_path, "memory")
    manager.up(settings, only=["broker"], log=lambda *_: None)
    broker = Broker(settings)
    try:
        producer = make_producer(settings)
        for i in range(200):
            producer.produce(settings.topic(TOPIC), value=f"m{i}".encode())
        assert producer.flush(30) == 0
        assert len(read_all(settings, "memory-group")) == 200
        kill(broker)
        restart(settings, broker)
        manager.up(settings, only=["broker"], log=lambda *_: None)  # recreates the topics the crash took
        assert read_all(settings, f"fresh-{uuid.uuid4().hex[:4]}") == [], "memory: the log is gone"
    finally:
        manager.down(settings)
