"""The output interface: where a service's results go (a Kafka topic, ClickHouse; next a webhook, MQTT, DATEX II).

The service runtime writes records to its outputs, then flushes them all, and commits the consumed offsets only after
every output said its records are durable. So a new output is one class with four methods, and it inherits the
platform's delivery guarantee (at-least-once; every record carries a deterministic id, so receivers de-duplicate).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from vigil.topics import Topic


class Output(ABC):
    name = "output"

    def accepts(self, topic: Topic, record_type: str) -> bool:
        """Whether this output takes records of `record_type` from `topic` (others are not written to it)."""
        return True

    @abstractmethod
    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        """Buffer or send one record. Raises ValueError (or KeyError/TypeError) for a record it cannot take."""

    def pending(self) -> int:
        """Records written but not yet known to be durable."""
        return 0

    @abstractmethod
    def flush(self, stop: threading.Event | None = None) -> bool:
        """Make everything written so far durable. False when it could not (broker did not acknowledge, or `stop`
        was set while retrying an outage): the caller must then not commit what it consumed."""

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {}
