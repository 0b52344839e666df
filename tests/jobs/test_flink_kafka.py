"""A PyFlink job on the local MiniCluster reads Avro from the Tansu broker through the official KafkaSource and
writes through KafkaSink (at-least-once), in a child process as the jobs run in production."""

import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from vigil.avro_codec import AvroCodec
from vigil.kafka_io import client_config, make_consumer, make_producer

JOB = r"""
import sys
from pyflink.common import Duration, Row, Types, WatermarkStrategy
from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.flink_env import kafka_sink, kafka_source, make_env

settings = Settings()
source_topic, sink_topic = sys.argv[1], sys.argv[2]
env = make_env(settings)
stream = env.from_source(kafka_source(settings, [source_topic], "flink-smoke"),
                         WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(2)), "frames")

def relabel(value: bytes):
    codec = AvroCodec()
    frame = codec.decode(value, expected="FrameRef")
    frame["encoding"] = "seen-by-flink"
    return Row(frame["camera_id"].encode(), codec.encode("FrameRef", frame))

BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
stream.map(relabel, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, sink_topic))
env.execute_async("flink-smoke")
print("submitted", flush=True)
sys.stdin.read()  # run until the test closes stdin
"""


def test_kafka_source_to_kafka_sink_through_pyflink(stack, tmp_path):
    source_topic, sink_topic = f"smoke-in-{uuid.uuid4().hex[:6]}", f"smoke-out-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(client_config(stack))
    for future in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in (source_topic, sink_topic)]).values():
        future.result(10)
    codec = AvroCodec()
    producer = make_producer(stack)
    sent = set()
    for i in range(40):
        frame = dict(frame_id=f"cam-{i % 2}:{i}", camera_id=f"cam-{i % 2}", capture_ts_ms=1_700_000_000_000 + 100 * i,
                     sequence=i, width=8, height=8, encoding="jpeg", uri="file:///x", ingest_ts_ms=0, trace_context={})
        producer.produce(source_topic, key=frame["camera_id"], value=codec.encode("FrameRef", frame), partition=i % 2)
        sent.add(frame["frame_id"])
    assert producer.flush(10) == 0

    env = {"VIGIL_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "VIGIL_FLINK_LIB_DIR": str(stack.flink_lib_dir)}
    import os

    job = subprocess.Popen([sys.executable, "-c", JOB, source_topic, sink_topic], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=tmp_path)
    consumer = make_consumer(stack, f"check-{uuid.uuid4().hex[:6]}", [sink_topic])
    received = {}
    try:
        for _ in range(240):  # up to ~2 minutes for MiniCluster start on a busy 2-core machine
            if len(received) >= len(sent) or job.poll() is not None:
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            frame = codec.decode(msg.value(), expected="FrameRef")
            received[frame["frame_id"]] = (msg.key().decode(), frame["encoding"])
    finally:
        consumer.close()
        job.stdin.close()
        job.wait(30)
    log = job.stdout.read().decode(errors="replace")
    assert set(received) == sent, log[-3000:]
    assert all(enc == "seen-by-flink" and key.startswith("cam-") for key, enc in received.values())
