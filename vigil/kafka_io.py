"""Kafka client settings shared by every service, and topic administration.

Delivery is at-least-once everywhere (acks=all, non-idempotent producer, manual commits after processing): Tansu loses
acknowledged messages with idempotent producers after a crash, and every Vigil message carries a deterministic id so
duplicates are removed downstream. Broker quirks are handled here, in configuration, never in business logic.

Security (SASL and TLS) comes from the typed `kafka_security_*`/`kafka_sasl_*`/`kafka_ssl_*` settings, spelled once
for librdkafka (`client_config`: every producer, consumer and admin client) and once for the Java client of the Flink
connectors (`java_properties`), so a job and a service reach the same cluster the same way.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from vigil import redact
from vigil.config import Settings
from vigil.topics import TOPICS

_SECRET_KEYS = ("password", "secret", "jaas", "token")
# The largest message a Vigil producer sends (librdkafka's message.max.bytes): the services dead-letter larger ones
# unread (vigil/runtime.py), since no Vigil service wrote them and a dead letter could not carry them whole.
MESSAGE_MAX_BYTES = 8_000_000
_JAAS_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                 "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                 "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


def _sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def _ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _password(settings: Settings) -> str:
    return settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""


def register_secrets(settings: Settings) -> None:
    """Tell the redaction (vigil/redact.py) the Kafka secrets: the SASL password, secret-looking kafka_config values."""
    redact.register(settings.kafka_sasl_password,
                    *(v for k, v in settings.kafka_config.items() if any(s in k.lower() for s in _SECRET_KEYS)))


def security_config(settings: Settings) -> dict:
    """librdkafka's security settings."""
    config = {"security.protocol": settings.kafka_security_protocol}
    if _sasl(settings):
        config |= {"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_sasl_username,
                   "sasl.password": _password(settings)}
    if _ssl(settings) and settings.kafka_ssl_ca_file:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_file)
    return config


def _jaas_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_properties(settings: Settings) -> dict[str, str]:
    """The same security settings for the Java Kafka client (the Flink KafkaSource and KafkaSink)."""
    properties = {"security.protocol": settings.kafka_security_protocol}
    if _sasl(settings):
        properties |= {"sasl.mechanism": settings.kafka_sasl_mechanism,
                       "sasl.jaas.config": f'{_JAAS_MODULES[settings.kafka_sasl_mechanism]} required '
                                           f"username={_jaas_quoted(settings.kafka_sasl_username)} "
                                           f"password={_jaas_quoted(_password(settings))};"}
    if _ssl(settings) and settings.kafka_ssl_ca_file:
        properties |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(settings.kafka_ssl_ca_file)}
    return properties


def client_config(settings: Settings) -> dict:
    register_secrets(settings)
    return {"bootstrap.servers": settings.kafka_bootstrap, **security_config(settings), **settings.kafka_config}


def make_producer(settings: Settings, **overrides) -> Producer:
    return Producer(
        {
            **client_config(settings),
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": MESSAGE_MAX_BYTES,
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
