"""The Flink readiness check: a PyFlink job on the local MiniCluster reads Avro frame references from the broker with
the official `KafkaSource`, rewrites them, and writes them back with `KafkaSink` (at-least-once). The check produces
the input, runs the job in a child process (as jobs run in production) and counts what comes back.

    vigil stack check        # against the running stack
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from vigil.config import REPO_ROOT, Settings
from vigil.topics import HOUR_MS, Topic


@dataclass
class FlinkCheck:
    ok: bool
    sent: int
    received: int
    seconds: float
    detail: str


def run_check(settings: Settings, records: int = 40, timeout_s: float = 150.0) -> FlinkCheck:
    from confluent_kafka.admin import AdminClient, NewTopic

    from vigil.avro_codec import AvroCodec
    from vigil.kafka_io import client_config, make_consumer, make_producer

    begin = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    source_topic, sink_topic = settings.topic(f"flink-check-in-{run_id}"), settings.topic(f"flink-check-out-{run_id}")
    admin = AdminClient(client_config(settings))
    for future in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=settings.kafka_replication_factor)
                                       for t in (source_topic, sink_topic)]).values():
        future.result(15)
    codec, producer = AvroCodec(settings.schema_registry_url), make_producer(settings)
    sent = set()
    for i in range(records):
        frame = dict(frame_id=f"check-{i % 2}:{i}", camera_id=f"check-{i % 2}", capture_ts_ms=1_700_000_000_000 + 100 * i,
                     sequence=i, width=8, height=8, encoding="jpeg", uri="file:///dev/null", ingest_ts_ms=0, trace_context={})
        producer.produce(source_topic, key=frame["camera_id"], value=codec.encode("FrameRef", frame, source_topic), partition=i % 2)
        sent.add(frame["frame_id"])
    producer.flush(15)
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VIGIL_FLINK_LIB_DIR": str(settings.flink_lib_dir),
           "VIGIL_KAFKA_CONFIG": __import__("json").dumps(settings.kafka_config)}
    job = subprocess.Popen([sys.executable, "-m", "app.stack.flink_check", source_topic, sink_topic],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    consumer = make_consumer(settings, f"flink-check-{run_id}", [sink_topic])
    received = set()
    try:
        while time.monotonic() - begin < timeout_s and received != sent and job.poll() is None:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            frame = codec.decode(message.value(), expected="FrameRef")
            if frame["encoding"] == "seen-by-flink" and message.key() == frame["camera_id"].encode():
                received.add(frame["frame_id"])
    finally:
        consumer.close()
        job.stdin.close()
        try:
            job.wait(30)
        except subprocess.TimeoutExpired:
            job.kill()
    log = job.stdout.read().decode(errors="replace")
    ok = received == sent
    detail = "KafkaSource → PyFlink → KafkaSink round trip complete" if ok else f"job output:\n{log[-3000:]}"
    return FlinkCheck(ok, len(sent), len(received), time.monotonic() - begin, detail)


def _job(source_topic: str, sink_topic: str) -> None:
    from pyflink.common import Duration, Row, Types, WatermarkStrategy

    from vigil.avro_codec import AvroCodec
    from vigil.flink_env import kafka_sink, kafka_source, make_env

    settings = Settings()  # no namespace: the parent passes deployed names
    check_in, check_out = (Topic(name, ("FrameRef",), "camera_id", 2, HOUR_MS, "vigil stack check")
                           for name in (source_topic, sink_topic))
    env = make_env(settings)
    stream = env.from_source(kafka_source(settings, [check_in], "vigil-flink-check"),
                             WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(2)), "frames")

    def mark(value: bytes):
        codec = AvroCodec(settings.schema_registry_url)
        frame = codec.decode(value, expected="FrameRef")
        frame["encoding"] = "seen-by-flink"
        return Row(frame["camera_id"].encode(), codec.encode("FrameRef", frame, sink_topic))

    as_bytes = Types.PRIMITIVE_ARRAY(Types.BYTE())
    stream.map(mark, output_type=Types.ROW([as_bytes, as_bytes])).sink_to(kafka_sink(settings, check_out))
    env.execute_async("vigil-flink-check")
    print("submitted", flush=True)
    sys.stdin.read()  # the job runs until the parent closes stdin


if __name__ == "__main__":
    _job(sys.argv[1], sys.argv[2])
