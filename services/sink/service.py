"""The sink: `frames.v1`, `detections.v1`, `camera-status.v1`, `deadletter.v1` → ClickHouse tables.

Rows are buffered per table and inserted in batches (max rows or max wait), then the consumed offsets are committed.
A crash between insert and commit replays the batch; the tables are ReplacingMergeTree on deterministic ids, so the
replay replaces rows instead of double-counting. ClickHouse outages stall and retry the batch; malformed messages go
to the dead-letter topic (except on the dead-letter topic itself, where they are only counted).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

from pydantic import Field

from services.sink.rows import NOT_STORED, ROUTES
from vigil.avro_codec import AvroCodec, UndecodableMessage
from vigil.config import Settings
from vigil.deadletter import DEADLETTER_TOPIC, DeadLetters
from vigil.kafka_io import make_consumer, make_producer
from vigil.statsfile import write_stats
from vigil.store.client import connect

log = logging.getLogger("vigil.sink")


class SinkSettings(Settings):
    sink_topics: list[str] = Field(default_factory=lambda: list(ROUTES), description="Topics stored in ClickHouse.")
    sink_max_rows: int = Field(5000, ge=1, description="Insert when this many rows are buffered.")
    sink_max_wait_ms: int = Field(500, ge=1, description="Insert at least this often while rows are buffered.")
    consumer_group: str = "vigil-sink"


class Sink:
    def __init__(self, settings: SinkSettings):
        self.settings = settings
        unknown = [t for t in settings.sink_topics if t not in ROUTES]
        if unknown:
            raise ValueError(f"no table for topics {unknown}; known: {sorted(ROUTES)}")
        self.codec = AvroCodec(settings.schema_registry_url)
        self.client = connect(settings)
        self.producer = make_producer(settings)
        self.dead_letters = DeadLetters(self.producer, self.codec, "sink", settings.topic(DEADLETTER_TOPIC))
        self.routes = {settings.topic(name): ROUTES[name] for name in settings.sink_topics}
        self.not_stored = {settings.topic(name): types for name, types in NOT_STORED.items()}
        self.buffer: dict[str, list] = defaultdict(list)
        self.stored: dict[str, int] = defaultdict(int)
        self.undecodable_dead_letters = 0

    def add(self, message) -> None:
        routes = self.routes[message.topic()]
        try:
            record = self.codec.decode(message.value())
            record_type = self.codec.record_type(message.value())
            if record_type in self.not_stored.get(message.topic(), ()):
                return
            if record_type not in routes:
                raise UndecodableMessage(f"expected a {' or '.join(routes)} message on {message.topic()}, got {record_type}")
            table, _, to_row = routes[record_type]
            row = to_row(record)
        except (UndecodableMessage, KeyError, TypeError, ValueError) as exc:
            if message.topic() == self.dead_letters.topic:
                self.undecodable_dead_letters += 1  # never dead-letter a dead letter
            else:
                self.dead_letters.send(message, f"sink cannot store it: {exc}")
            return
        self.buffer[table].append(row)

    @property
    def buffered(self) -> int:
        return sum(len(rows) for rows in self.buffer.values())

    def flush(self, stop: threading.Event | None = None) -> bool:
        """Insert every buffered row; retries through ClickHouse outages. False if stopped before it succeeded."""
        backoff = 0.5
        columns = {table: cols for routes in ROUTES.values() for table, cols, _ in routes.values()}
        for table in list(self.buffer):
            rows = self.buffer[table]
            while rows:
                try:
                    self.client.insert(table, rows, column_names=columns[table])
                    self.stored[table] += len(rows)
                    break
                except Exception as exc:  # clickhouse-connect raises OperationalError/DatabaseError
                    log.error("insert into %s failed (%s); retrying in %.1fs", table, str(exc).splitlines()[0][:300], backoff)
                    if stop is not None and stop.wait(backoff):
                        return False
                    backoff = min(backoff * 2, 10.0)
            del self.buffer[table]
        return True

    def run(self, stop: threading.Event, stats_file: Path | None = None) -> None:
        consumer = make_consumer(self.settings, self.settings.consumer_group, list(self.routes),
                                 **{"max.poll.interval.ms": 600000})
        last_flush = time.monotonic()
        try:
            while not stop.is_set():
                for message in consumer.consume(1000, 0.1):
                    if message.error():
                        log.warning("consumer error: %s", message.error())
                        continue
                    self.add(message)
                due = (time.monotonic() - last_flush) * 1000 >= self.settings.sink_max_wait_ms
                if self.buffered >= self.settings.sink_max_rows or (due and self.buffered):
                    if not self.flush(stop):
                        break  # stopped during an outage: offsets stay uncommitted, the rows come again
                    self.producer.flush(10)  # dead letters out before the offsets move on
                    consumer.commit(asynchronous=False)
                    if stats_file:
                        self._write_stats(stats_file)
                if due:
                    last_flush = time.monotonic()
        finally:
            consumer.close()
            self.producer.flush(10)
            if stats_file:
                self._write_stats(stats_file)
            log.info("sink stored %s, dead letters %d", dict(self.stored), self.dead_letters.count)

    def _write_stats(self, path: Path) -> None:
        write_stats(path, {"stored": dict(self.stored), "dead_letters": self.dead_letters.count})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil sink", description="Store result topics in ClickHouse.")
    parser.add_argument("--stats-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Sink(SinkSettings()).run(stop, args.stats_file)
    return 0
