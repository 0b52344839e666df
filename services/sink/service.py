"""The sink: the result topics → its outputs (ClickHouse; more are plug-ins), offsets committed after each flush.

Records are written to every output that accepts them, buffered, and flushed in batches (max rows or max wait); the
consumed offsets are committed only after every output flushed. A crash between flush and commit replays the batch;
the tables are ReplacingMergeTree on deterministic ids, so the replay replaces rows instead of double-counting.
ClickHouse outages stall and retry; a record an output cannot take goes to the dead-letter topic with the reason.
"""

from __future__ import annotations

import logging
import threading

from pydantic import Field

from vigil.config import Settings
from vigil.outputs.base import Output
from vigil.outputs.clickhouse import ClickHouseOutput
from vigil.outputs.datex2 import Datex2Output
from vigil.outputs.kafka import KafkaOutput
from vigil.outputs.mqtt import MqttOutput
from vigil.outputs.webhook import WebhookOutput
from vigil.runtime import DeadLetters, Handler, Incoming, StartupError, StreamService
from vigil.runtime import main as run_main
from vigil.topics import CAMERA_STATUS, DEADLETTER, DETECTIONS, EVENTS, FRAMES, INCIDENTS, TOPICS, TRACKS, TRAFFIC

log = logging.getLogger("vigil.sink")

# Output name (VIGIL_SINK_OUTPUTS) → its class. A new output is one file in vigil/outputs/ plus one line here.
OUTPUTS: dict[str, type[Output]] = {
    "clickhouse": ClickHouseOutput,
    "datex2": Datex2Output,
    "webhook": WebhookOutput,
    "mqtt": MqttOutput,
}
STORED_TOPICS = [FRAMES, DETECTIONS, CAMERA_STATUS, DEADLETTER, TRACKS, EVENTS, TRAFFIC, INCIDENTS]


class SinkSettings(Settings):
    sink_topics: list[str] = Field(default_factory=lambda: [t.name for t in STORED_TOPICS], description="Topics stored.")
    sink_outputs: list[str] = Field(default_factory=lambda: ["clickhouse"], description=f"Outputs: {sorted(OUTPUTS)}.")
    sink_max_rows: int = Field(5000, ge=1, description="Flush when this many rows are buffered.")
    sink_max_wait_ms: int = Field(500, ge=1, description="Flush at least this often while rows are buffered.")
    consumer_group: str = "vigil-sink"


class StoreAll(Handler):
    """Every record to every output that accepts it; one an output cannot take is dead-lettered with the reason."""

    def __init__(self, outputs: list[Output], dead_letters: DeadLetters):
        self.outputs, self.dead_letters = outputs, dead_letters

    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        for incoming in batch:
            for output in self.outputs:
                if not output.accepts(incoming.topic, incoming.record_type):
                    continue
                try:
                    output.write(incoming.topic, incoming.record_type, incoming.record, incoming.key)
                except (KeyError, TypeError, ValueError) as exc:
                    self.dead_letters.send(incoming.message, f"sink cannot store it in {output.name}: {exc}")
        return True


class Sink(StreamService):
    def __init__(self, settings: SinkSettings, outputs: list[Output] | None = None):
        unknown_topics = [name for name in settings.sink_topics if name not in TOPICS]
        unknown_outputs = [name for name in settings.sink_outputs if name not in OUTPUTS]
        if unknown_topics or unknown_outputs:
            raise StartupError(f"VIGIL_SINK_TOPICS/VIGIL_SINK_OUTPUTS name unknown topics {unknown_topics} or outputs "
                               f"{unknown_outputs}; known topics: {sorted(TOPICS)}, outputs: {sorted(OUTPUTS)}")
        inputs = [TOPICS[name] for name in settings.sink_topics]
        if "clickhouse" in settings.sink_outputs:
            ClickHouseOutput.check_topics(inputs)
        self.kafka = KafkaOutput(settings)  # dead letters
        stores = outputs if outputs is not None else [OUTPUTS[name](settings) for name in settings.sink_outputs]
        dead_letters = DeadLetters(self.kafka, "sink", settings)
        super().__init__(settings, "sink", inputs, StoreAll(stores, dead_letters), [*stores, self.kafka], dead_letters,
                         settings.consumer_group, batch_size=1000, poll_timeout_s=0.1, flush_rows=settings.sink_max_rows,
                         flush_every_ms=settings.sink_max_wait_ms, codec=self.kafka.codec,
                         consumer_overrides={"max.poll.interval.ms": 600000})
        self.stores = stores

    @property
    def stored(self) -> dict:
        return {table: count for output in self.stores for table, count in output.stats().get("stored", {}).items()}


def main(argv: list[str] | None = None) -> int:
    return run_main("vigil sink", "Store result topics in ClickHouse (and the other configured outputs).",
                    lambda args: Sink(SinkSettings()), argv=argv)
