"""The Kafka output: records encoded with the Avro codec and produced to their registered topic, keyed and stamped.

Every service's Kafka producing goes through here, so the topic a record type may go to is checked against the topic
registry in one place. Thread-safe (confluent-kafka's producer is), so ingest's camera threads share one.
"""

from __future__ import annotations

import logging
import threading

from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.kafka_io import make_producer
from vigil.metrics import DELIVERY_FAILURES, PRODUCED
from vigil.outputs.base import Output
from vigil.topics import Topic

log = logging.getLogger("vigil.outputs.kafka")


class KafkaOutput(Output):
    name = "kafka"

    def __init__(self, settings: Settings, codec: AvroCodec | None = None, flush_timeout_s: float = 30.0, **producer_overrides):
        self.settings = settings
        self.codec = codec or AvroCodec(settings.schema_registry_url)
        self.producer = make_producer(settings, **producer_overrides)
        self.flush_timeout_s = flush_timeout_s
        self.delivery_failures = 0
        self.produced = 0
        self.service = "unnamed"  # the metrics label: set by the service runtime that owns this output

    def _delivered(self, err, msg) -> None:
        topic = self.settings.logical_topic(msg.topic())
        if err is not None:
            self.delivery_failures += 1
            DELIVERY_FAILURES.labels(self.service, topic).inc()
            log.error("delivery to %s failed: %s", msg.topic(), err)
        else:
            PRODUCED.labels(self.service, topic).inc()

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        if not topic.carries(record_type):
            raise ValueError(f"{topic.name} carries {', '.join(topic.records)}, not {record_type} (vigil/topics.py)")
        name = topic.deployed(self.settings)
        value = self.codec.encode(record_type, record, name)
        extra = {} if timestamp_ms is None else {"timestamp": int(timestamp_ms)}
        self.producer.produce(name, key=key, value=value, on_delivery=self._delivered, **extra)
        self.produced += 1
        self.producer.poll(0)

    def pending(self) -> int:
        return len(self.producer)

    def flush(self, stop: threading.Event | None = None) -> bool:
        unsent = self.producer.flush(self.flush_timeout_s)
        if unsent:
            log.error("%d messages not acknowledged by the broker within %.0fs", unsent, self.flush_timeout_s)
        return unsent == 0

    def poll(self) -> None:
        self.producer.poll(0)

    def close(self) -> None:
        self.producer.flush(10)

    def stats(self) -> dict:
        return {"produced": self.produced, "delivery_failures": self.delivery_failures}
