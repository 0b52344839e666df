"""Dead letters: a message a service cannot process goes to `deadletter.v1` with the reason, unchanged, and is counted.
The service then moves on; nothing stops on bad input."""

from __future__ import annotations

import logging
import time

from vigil.avro_codec import AvroCodec

DEADLETTER_TOPIC = "deadletter.v1"
log = logging.getLogger("vigil.deadletter")


class DeadLetters:
    def __init__(self, producer, codec: AvroCodec, service: str, topic: str = DEADLETTER_TOPIC):
        self.producer, self.codec, self.service, self.topic = producer, codec, service, topic
        self.count = 0

    def send(self, message, reason: str) -> None:
        self.count += 1
        log.warning("%s: dead-lettering %s[%d]@%d: %s", self.service, message.topic(), message.partition(),
                    message.offset(), reason)
        record = dict(source_topic=message.topic(), source_partition=message.partition(),
                      source_offset=message.offset(), service=self.service, reason=reason[:2000],
                      key=message.key(), value=message.value(), ts_ms=time.time_ns() // 1_000_000)
        self.producer.produce(self.topic, key=message.key(), value=self.codec.encode("DeadLetter", record, self.topic))
