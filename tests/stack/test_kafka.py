"""Avro messages through the real Tansu broker with a consumer group: committed offsets survive and a new consumer
in the same group resumes exactly where the last commit left off."""

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from vigil.avro_codec import AvroCodec
from vigil.kafka_io import client_config, make_consumer, make_producer
from vigil.topics import TOPICS

pytestmark = pytest.mark.slow  # starts real servers or Flink


def _frame(i: int) -> dict:
    return dict(frame_id=f"cam-1:{i}:{1_700_000_000_000 + i}", camera_id=f"cam-{i % 2}", capture_ts_ms=1_700_000_000_000 + i,
                sequence=i, width=768, height=432, encoding="jpeg", uri=f"file:///frames/{i}.jpg",
                ingest_ts_ms=1_700_000_000_000 + i, trace_context={})


def _consume(consumer, codec, want: int, max_polls: int = 200) -> list[dict]:
    got = []
    for _ in range(max_polls):
        if len(got) >= want:
            break
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        got.append(codec.decode(msg.value(), expected="FrameRef"))
    return got


def test_topics_created_from_the_registry(stack):
    topics = AdminClient(client_config(stack)).list_topics(timeout=5).topics
    for registered in TOPICS.values():
        assert len(topics[registered.deployed(stack)].partitions) == registered.partitions_in(stack)


def test_consumer_group_commits_and_resumes(stack):
    topic = f"test-resume-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(stack))
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(10)
    codec = AvroCodec()
    producer = make_producer(stack)
    for i in range(60):
        record = _frame(i)
        producer.produce(topic, key=record["camera_id"], value=codec.encode("FrameRef", record))
    assert producer.flush(15) == 0

    group = f"g-{uuid.uuid4().hex[:8]}"
    first = make_consumer(stack, group, [topic])
    first_batch = _consume(first, codec, 25)
    first.commit(asynchronous=False)
    first.close()

    second = make_consumer(stack, group, [topic])
    rest = _consume(second, codec, 60 - len(first_batch))
    extra = _consume(second, codec, 1, max_polls=6)  # nothing more may arrive
    second.close()

    seen = [r["frame_id"] for r in first_batch + rest + extra]
    assert len(first_batch) == 25
    assert sorted(seen) == sorted(_frame(i)["frame_id"] for i in range(60)), "every message exactly once across the two consumers"
