"""PyFlink plumbing shared by every job: the execution environment (jars, Python, checkpoints) and the official
Kafka connector's source and sink, configured for Tansu in embedded mode and for any Kafka cluster in production.

Job logic never touches this module: each job keeps a connector-free `build_pipeline(stream)` so tests run the same
topology on `from_collection`.
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from pathlib import Path

from pyflink.common import Configuration, Row, Types
from pyflink.common.serialization import ByteArraySchema, RowFieldExtractorSchema
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway

from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.kafka_io import group_name, java_properties
from vigil.topics import DEADLETTER, Topic


def checkpoint_uri(checkpoint_dir: Path | str) -> str:
    """Where checkpoints go: a URI with a scheme (s3://bucket/prefix on a cluster) as it is, a local path as file://."""
    text = str(checkpoint_dir)
    return text if "://" in text else Path(text).resolve().as_uri()


def make_env(settings: Settings, checkpoint_dir: Path | str | None = None, checkpoint_interval_ms: int = 2000,
             restore_from: str | None = None, parallelism: int | None = None):
    missing = [str(p) for p in settings.flink_jars if not p.exists()]
    if missing:
        raise FileNotFoundError(f"Flink Kafka connector jars missing: {missing}; run `make setup`")
    conf = Configuration()
    # Python operators process records in bundles; the default 1 s bundle time adds up to a second to every event.
    conf.set_string("python.fn-execution.bundle.time", str(settings.flink_bundle_time_ms))
    if checkpoint_dir is not None:
        conf.set_string("execution.checkpointing.interval", f"{checkpoint_interval_ms}ms")
        conf.set_string("execution.checkpointing.storage", "filesystem")
        conf.set_string("execution.checkpointing.dir", checkpoint_uri(checkpoint_dir))
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if restore_from:
        conf.set_string("execution.state-recovery.path", restore_from)
    if settings.flink_metrics_port:  # Flink's reporter listens on every interface: off in the embedded stack
        conf.set_string("metrics.reporter.prom.factory.class",
                        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
        conf.set_string("metrics.reporter.prom.port", str(settings.flink_metrics_port))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism or settings.flink_parallelism)
    env.set_python_executable(sys.executable)  # else Python workers cannot import pyflink
    env.add_jars(*(p.resolve().as_uri() for p in settings.flink_jars))
    return env


@lru_cache(maxsize=1)
def worker_codec():
    """One AvroCodec per Python worker process, built on first use (functions ship to workers, codecs do not)."""
    return AvroCodec()


def encode_stamped(record_type: str, record: dict, key_field: str):
    """A job's output record → Row(key, Avro value) for the KafkaSink, stamped with its emission time."""
    record = {**record, "emitted_ts_ms": time.time_ns() // 1_000_000}
    return Row(record[key_field].encode(), worker_codec().encode(record_type, record))


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    """Newest completed checkpoint (a chk-N folder with _metadata) under any job id in checkpoint_dir."""
    done = [p for p in Path(checkpoint_dir).glob("*/chk-*") if (p / "_metadata").exists()]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1]))).resolve().as_uri()


def restore_path(checkpoint_dir: Path | str, restore: str) -> str | None:
    """`--restore` semantics shared by the jobs: 'latest', 'none' or an explicit checkpoint/savepoint URI."""
    if restore == "latest" and "://" in str(checkpoint_dir) and not str(checkpoint_dir).startswith("file://"):
        raise ValueError(f"--restore latest looks for checkpoints in a local directory, not in {checkpoint_dir}; on a "
                         "cluster the Flink operator restores the job (upgradeMode last-state)")
    if restore == "latest":
        return latest_checkpoint(checkpoint_dir)
    return None if restore == "none" else restore


def job_arguments(parser, group: str, cameras_help: str, cameras_required: bool = True) -> None:
    """The command line every job takes: the camera file, where checkpoints go, what to restore, the consumer group."""
    parser.add_argument("--cameras", type=Path, required=cameras_required, help=cameras_help)
    parser.add_argument("--checkpoint-dir", required=True, help="a local directory, or a URI such as s3://bucket/prefix")
    parser.add_argument("--restore", default="none", help="'latest', 'none' or a checkpoint/savepoint URI")
    parser.add_argument("--group", default=group)


def job_environment(settings: Settings, args):
    """The execution environment of a job started with `job_arguments`, restored as `--restore` asks."""
    restore = restore_path(args.checkpoint_dir, args.restore)
    print(f"restoring from {restore}" if restore else "starting without restored state", flush=True)
    return make_env(settings, checkpoint_dir=args.checkpoint_dir, restore_from=restore)


def dead_letter_route(decoded, settings: Settings, source: Topic, service: str) -> None:
    """Send the undecodable branch of a decoded stream — `(None, reason, raw bytes)` tuples — to deadletter.v1."""
    source_topic = source.deployed(settings)
    bytes_type = Types.PRIMITIVE_ARRAY(Types.BYTE())

    def to_row(value):  # a closure: pickled by value to the Python workers, so it imports what it uses itself
        import time

        from pyflink.common import Row

        _, reason, raw = value
        record = dict(source_topic=source_topic, source_partition=-1, source_offset=-1, service=service,
                      reason=reason, key=None, value=raw, ts_ms=time.time_ns() // 1_000_000)
        return Row(service.encode(), worker_codec().encode("DeadLetter", record))

    decoded.filter(lambda value: value[0] is None).map(to_row, output_type=Types.ROW([bytes_type, bytes_type])) \
        .sink_to(kafka_sink(settings, DEADLETTER))


def kafka_source(settings: Settings, topics: list[Topic], group_id: str, from_committed: bool = True):
    """Raw-bytes KafkaSource. Records carry the Kafka record timestamp, which event-time watermarks use directly.

    Starts from the group's committed offsets (earliest when none). The PyFlink wrappers for committed offsets name
    shaded classes the official jar does not have, so the initializer is built through the Java gateway.
    """
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(*(t.deployed(settings) for t in topics))
        .set_group_id(group_name(settings, group_id))
        .set_value_only_deserializer(ByteArraySchema())
        .set_property("session.timeout.ms", str(settings.kafka_session_timeout_ms))
        .set_property("heartbeat.interval.ms", str(max(100, settings.kafka_session_timeout_ms // 3)))
        .set_property("partition.discovery.interval.ms", "10000")
        .set_property("commit.offsets.on.checkpoint", "true")
    )
    for key, value in {**java_properties(settings), **settings.kafka_config}.items():  # SASL/TLS as the services
        builder = builder.set_property(key, value)
    if from_committed:
        jvm = get_gateway().jvm
        initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer.committedOffsets(
            jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST)
        builder = builder.set_starting_offsets(KafkaOffsetsInitializer(initializer))
    else:
        builder = builder.set_starting_offsets(KafkaOffsetsInitializer.earliest())
    return builder.build()


def kafka_sink(settings: Settings, topic: Topic):
    """At-least-once KafkaSink for `Row(key_bytes, value_bytes)` records. Exactly-once is not used: Tansu delivers
    aborted transactional records, and every Vigil message carries a deterministic id for downstream de-duplication."""
    serializer = (
        KafkaRecordSerializationSchema.builder()
        .set_topic(topic.deployed(settings))
        .set_key_serialization_schema(RowFieldExtractorSchema(0))
        .set_value_serialization_schema(RowFieldExtractorSchema(1))
        .build()
    )
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .set_record_serializer(serializer)
    )
    for key, value in {**java_properties(settings), **settings.kafka_config}.items():  # SASL/TLS as the services
        builder = builder.set_property(key, value)
    return builder.build()
