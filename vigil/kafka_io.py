"""Kafka client settings shared by every service, and topic administration.

Delivery is at-least-once everywhere (acks=all, non-idempotent producer, manual commits after processing): Tansu loses
acknowledged messages with idempotent producers after a crash, and every Vigil message carries a deterministic id so
duplicates are removed downstream. Broker quirks are handled here, in configuration, never in business logic.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from vigil.config import Settings
from vigil.topics import TOPICS


def client_config(settings: Settings) -> dict:
    return {"bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_config}


def make_producer(settings: Settings, **overrides) -> Producer:
    return Producer(
        {
            **client_config(settings),
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": 8_000_000,
            **overrides,
        }
    )


def group_name(settings: Settings, group_id: str) -> str:
    """The deployed consumer group: the topic namespace, then the group ('vigil-sink' → '<namespace>vigil-sink'), so
    deployments sharing a cluster under different namespaces never share (and rebalance) a group."""
    return f"{settings.topic_namespace}{group_id}"


def make_consumer(settings: Settings, group_id: str, topics: list[str], **overrides) -> Consumer:
    session_ms = settings.kafka_session_timeout_ms
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": group_name(settings, group_id),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 3),
            **overrides,
        }
    )
    consumer.subscribe(topics)
    return consumer


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create the configured topics that do not exist yet; return the ones created."""
    unknown = sorted(set(settings.kafka_topics) - set(TOPICS))
    if unknown:
        raise ValueError(f"VIGIL_KAFKA_TOPICS names topics that are not in the registry (vigil/topics.py): {unknown}")
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(t.deployed(settings), num_partitions=t.partitions_in(settings),
                 replication_factor=settings.kafka_replication_factor, config={"retention.ms": str(t.retention_ms)})
        for t in TOPICS.values()
        if t.deployed(settings) not in existing
    ]
    if not missing:
        return []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    deadline = time.monotonic() + timeout_s
    names = [t.topic for t in missing]
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(n in topics and topics[n].partitions for n in names):
            break
        time.sleep(0.1)
    return names


def topic_partitions(settings: Settings, timeout_s: float = 5.0) -> dict[str, int]:
    admin = AdminClient(client_config(settings))
    return {name: len(meta.partitions) for name, meta in admin.list_topics(timeout=timeout_s).topics.items() if not name.startswith("__")}
