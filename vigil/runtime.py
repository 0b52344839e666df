"""The one service runtime: consume → decode → handle → write to outputs → flush → commit, written once.

Every long-running service is a small `Handler` (what to do with a batch of decoded records) or a `Source` (where
records come from when not from Kafka, e.g. cameras) plugged into this runtime, which owns what they have in common:

- decoding against the topic registry, and dead letters for anything undecodable or of a type the topic does not carry;
- at-least-once delivery: offsets are committed only after every output flushed (broker acknowledged, rows inserted);
- back-off through outages (`retry`), stop on SIGTERM/SIGINT, a stats file, and `main()` with clear start-up errors.

    StreamService(settings, "infer", inputs=[FRAMES], handler=..., outputs=[kafka]).run(stop)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.avro_codec import AvroCodec, UndecodableMessage
from vigil.config import Settings
from vigil.kafka_io import MESSAGE_MAX_BYTES, make_consumer
from vigil.metrics import (
    BATCH_SIZE,
    CONSUMED,
    DEAD_LETTERS,
    HOP_LATENCY,
    LagProbe,
    dead_letter_cause,
    expose,
)
from vigil.redact import install_log_redaction
from vigil.statsfile import write_stats
from vigil.telemetry import configure_tracing, flush_traces
from vigil.topics import DEADLETTER, Topic

log = logging.getLogger("vigil.runtime")
# A dead letter carries the original key and value; one too big for that (an oversized message) keeps their start.
KEPT_VALUE_BYTES, KEPT_KEY_BYTES = 1_000_000, 1_000


class StartupError(RuntimeError):
    """Configuration a service cannot start with; the message says what to fix (the process exits with status 2)."""


def retry(call: Callable[[], Any], stop: threading.Event | None, what: str, logger: logging.Logger = log,
          initial_s: float = 0.5, max_s: float = 10.0) -> tuple[bool, Any]:
    """Call `call()` until it succeeds, backing off exponentially (capped) between failures: how every service rides
    out a Triton, ClickHouse or broker outage. Returns (True, result), or (False, None) when `stop` was set while
    waiting (the caller then leaves its input uncommitted, so nothing is lost)."""
    backoff = initial_s
    while True:
        try:
            return True, call()
        except Exception as exc:  # client libraries raise many types for outages and overload
            logger.error("%s failed (%s); retrying in %.1fs", what, str(exc).splitlines()[0][:300] if str(exc) else
                         type(exc).__name__, backoff)
            if stop is None:
                time.sleep(backoff)
            elif stop.wait(backoff):
                return False, None
            backoff = min(backoff * 2, max_s)


@dataclass
class Incoming:
    """One consumed message, decoded into the current shape of its record."""

    topic: Topic
    record_type: str
    record: dict
    message: Any  # the confluent-kafka Message (key, timestamp, offsets; dead letters quote it)

    @property
    def key(self) -> bytes | None:
        return self.message.key()


def name_outputs(outputs: list, service: str) -> None:
    """Give outputs that label their metrics by service (the Kafka output) the name of the service that owns them,
    unless one already has it."""
    for output in outputs:
        if getattr(output, "service", None) == "unnamed":
            output.service = service


class DeadLetters:
    """A message a service cannot process goes to deadletter.v1 unchanged, with the reason, and is counted; the
    service moves on. Dead letters that are themselves unprocessable are only counted and logged (never dead-letter a
    dead letter)."""

    def __init__(self, output, service: str, settings: Settings):
        self.output, self.service, self.settings = output, service, settings
        self.topic_name = DEADLETTER.deployed(settings)
        self.count = 0
        self.dropped = 0
        name_outputs([output], service)

    def send(self, message, reason: str, cause: str | None = None) -> None:
        """`cause`: a short fixed label for the metrics (default: the reason up to its first ':')."""
        if message.topic() == self.topic_name:
            self.dropped += 1
            log.warning("%s: dropping unprocessable dead letter %s[%d]@%d: %s", self.service, message.topic(),
                        message.partition(), message.offset(), reason)
            return
        self.count += 1
        DEAD_LETTERS.labels(self.service, self.settings.logical_topic(message.topic()),
                            cause or dead_letter_cause(reason)).inc()
        log.warning("%s: dead-lettering %s[%d]@%d: %s", self.service, message.topic(), message.partition(),
                    message.offset(), reason)
        key, value = message.key(), message.value()
        if 2 * len(key or b"") + len(value or b"") > MESSAGE_MAX_BYTES - 16_000:  # key twice: in the record and as key
            reason = (f"{reason[:1800]} (value kept as its first {min(len(value or b''), KEPT_VALUE_BYTES)} of "
                      f"{len(value or b'')} bytes, key as its first {min(len(key or b''), KEPT_KEY_BYTES)} of "
                      f"{len(key or b'')})")
            key, value = key and key[:KEPT_KEY_BYTES], value and value[:KEPT_VALUE_BYTES]
        record = dict(source_topic=message.topic(), source_partition=message.partition(),
                      source_offset=message.offset(), service=self.service, reason=reason[:2000],
                      key=key, value=value, ts_ms=time.time_ns() // 1_000_000)
        self.output.write(DEADLETTER, "DeadLetter", record, key=key)


class Handler(ABC):
    """A service's own step. It writes results to the outputs it was built with; the runtime flushes and commits."""

    @abstractmethod
    def handle(self, batch: list[Incoming], stop: threading.Event) -> bool:
        """Process one batch. False = stopped part-way (waiting out an outage): the batch must not be committed."""

    def idle(self) -> None:
        """Nothing arrived within the poll timeout (time-driven work: ending idle tracks, ...)."""

    def close(self) -> None:
        """The service is stopping: last words (e.g. end every open track) before the final flush."""

    def stats(self) -> dict:
        return {}

    def commit_floor(self) -> dict[tuple[str, int], int]:
        """(topic as deployed, partition) -> the lowest offset the handler still needs after a restart, for state it
        holds in memory (the embed service's open tracks). The runtime commits no further on those partitions, so a
        restarted service reads those records again and rebuilds what it held. Empty: commit everything handled."""
        return {}


class StreamService:
    """Consume `inputs`, decode against the topic registry, hand batches to `handler`, flush `outputs`, commit.

    `flush_rows`/`flush_every_ms` = 0 flush after every batch (lowest latency: infer); otherwise outputs are flushed
    when that many records are pending or that much time passed (bigger inserts: the sink).

    `greedy_batches`: hand over what has arrived as soon as one message is there (up to `batch_size`) instead of
    waiting up to `poll_timeout_s` for a full batch. A lightly loaded service then adds no batching delay, and under
    load the batches still fill by themselves, with the messages that queued while the last batch was handled."""

    def __init__(self, settings: Settings, name: str, inputs: list[Topic], handler: Handler, outputs: list,
                 dead_letters: DeadLetters, group_id: str, batch_size: int = 100, poll_timeout_s: float = 0.1,
                 flush_rows: int = 0, flush_every_ms: int = 0, codec: AvroCodec | None = None,
                 consumer_overrides: dict | None = None, greedy_batches: bool = False):
        self.settings, self.name, self.inputs, self.handler = settings, name, inputs, handler
        self.outputs, self.dead_letters, self.group_id = outputs, dead_letters, group_id
        self.batch_size, self.poll_timeout_s, self.greedy_batches = batch_size, poll_timeout_s, greedy_batches
        self.flush_rows, self.flush_every_ms = flush_rows, flush_every_ms
        self.codec = codec or AvroCodec(settings.schema_registry_url)
        self.consumer_overrides = consumer_overrides or {}
        self.by_deployed_name = {topic.deployed(settings): topic for topic in inputs}
        self.consumed = 0
        name_outputs(outputs, name)
        self.lag = LagProbe(name, {deployed: topic.name for deployed, topic in self.by_deployed_name.items()})
        # the metric children this loop updates per message, looked up once
        self._consumed = {deployed: CONSUMED.labels(name, topic.name) for deployed, topic in self.by_deployed_name.items()}
        self._hop_latency, self._batch_size = HOP_LATENCY.labels(name), BATCH_SIZE.labels(name)

    def decode(self, message) -> Incoming | None:
        """The decoded message, or None after dead-lettering it (oversized, bad bytes, or a record type its topic does
        not carry)."""
        topic = self.by_deployed_name[message.topic()]
        size = len(message.key() or b"") + len(message.value() or b"")
        if size > MESSAGE_MAX_BYTES:
            self.dead_letters.send(message, f"oversized: {size} bytes, over the {MESSAGE_MAX_BYTES} a Vigil producer "
                                   "sends (message.max.bytes)", cause="oversized")
            return None
        try:
            record = self.codec.decode(message.value())
            record_type = self.codec.record_type(message.value())
            if not topic.carries(record_type):
                self.dead_letters.send(message, f"expected a {' or '.join(topic.records)} message on {topic.name}, got "
                                       f"{record_type}", cause="unexpected record type")
                return None
        except UndecodableMessage as exc:
            self.dead_letters.send(message, str(exc), cause="undecodable")
            return None
        return Incoming(topic, record_type, record, message)

    def flush(self, stop: threading.Event | None) -> bool:
        return all(output.flush(stop) for output in self.outputs)

    def pending(self) -> int:
        return sum(output.pending() for output in self.outputs)

    def stats(self) -> dict:
        stats = {**self.handler.stats(), "dead_letters": self.dead_letters.count}
        for output in self.outputs:
            stats.update(output.stats())
        return stats

    def _flush_due(self, got_messages: bool, uncommitted: bool) -> bool:
        pending = self.pending()
        if not self.flush_rows:
            return got_messages or pending > 0
        now = time.monotonic()
        due = (now - self._last_flush) * 1000 >= self.flush_every_ms
        if due:
            self._last_flush = now
        return pending >= self.flush_rows or (due and (pending > 0 or uncommitted))

    def _commit(self, consumer) -> None:
        """Commit what was handled and flushed, held back on partitions where the handler still needs records."""
        floor = self.handler.commit_floor()
        if not floor:
            consumer.commit(asynchronous=False)
            return
        offsets = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        for tp in offsets:
            tp.offset = min(tp.offset, floor.get((tp.topic, tp.partition), tp.offset))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)

    def _next_messages(self, consumer) -> list:
        if not self.greedy_batches:
            return consumer.consume(self.batch_size, self.poll_timeout_s)
        messages = consumer.consume(1, self.poll_timeout_s)
        if messages and self.batch_size > 1:
            messages += consumer.consume(self.batch_size - 1, 0)  # only what is already fetched: no waiting
        return messages

    def run(self, stop: threading.Event, stats_file: Path | None = None) -> None:
        consumer = make_consumer(self.settings, self.group_id, list(self.by_deployed_name), **self.consumer_overrides)
        uncommitted, last_log = False, time.monotonic()
        self._last_flush = time.monotonic()
        try:
            while not stop.is_set():
                messages = self._next_messages(consumer)
                batch = []
                now_ms = time.time_ns() // 1_000_000
                for message in messages:
                    if message.error():
                        log.warning("%s: consumer error: %s", self.name, message.error())
                        continue
                    uncommitted = True
                    self._consumed[message.topic()].inc()
                    kind, stamp = message.timestamp()
                    if kind and stamp > 0:  # the record's timestamp: capture time for frames and detections
                        self._hop_latency.observe(max(0.0, (now_ms - stamp) / 1000))
                    incoming = self.decode(message)
                    if incoming is not None:
                        batch.append(incoming)
                self.consumed += len(messages)
                if batch:
                    self._batch_size.observe(len(batch))
                self.lag.maybe_measure(consumer)
                if not messages:
                    self.handler.idle()
                elif batch and not self.handler.handle(batch, stop):
                    break  # stopped mid-batch: offsets stay uncommitted and the batch is redone on restart
                if not self._flush_due(bool(messages), uncommitted):
                    continue
                if not self.flush(stop):
                    if stop.is_set():
                        break
                    continue  # not acknowledged: the offsets stay; the records come again on restart
                if uncommitted:
                    self._commit(consumer)
                    uncommitted = False
                if stats_file:
                    write_stats(stats_file, self.stats())
                if time.monotonic() - last_log > 10:
                    log.info("%s: %s", self.name, json.dumps(self.stats()))
                    last_log = time.monotonic()
        finally:
            self.handler.close()
            for output in self.outputs:
                output.close()
            consumer.close()
            if stats_file:
                write_stats(stats_file, self.stats())
            log.info("%s stopped: %s", self.name, json.dumps(self.stats()))


class Source(ABC):
    """Records that do not come from Kafka (cameras): started once, polled by the runtime until finished or stopped."""

    @abstractmethod
    def start(self, stop: threading.Event) -> None: ...

    @abstractmethod
    def finished(self) -> bool: ...

    def housekeeping(self) -> None:
        """Called about twice a second while the source runs."""

    def close(self) -> None:
        """Wait for the source's threads after `stop` was set."""

    def stats(self) -> dict:
        return {}


class SourceService:
    """Run a `Source` that writes to `outputs` until it finishes, `max_seconds` pass or `stop` is set."""

    def __init__(self, name: str, source: Source, outputs: list):
        self.name, self.source, self.outputs = name, source, outputs
        name_outputs(outputs, name)

    def run(self, stop: threading.Event, stats_file: Path | None = None, max_seconds: float | None = None) -> dict:
        deadline = time.monotonic() + max_seconds if max_seconds else None
        self.source.start(stop)
        try:
            while not stop.is_set() and not self.source.finished():
                stop.wait(0.5)
                self.source.housekeeping()
                if stats_file:
                    write_stats(stats_file, self.source.stats())
                if deadline and time.monotonic() > deadline:
                    break
        finally:
            stop.set()
            self.source.close()
            delivered = all(output.flush(None) for output in self.outputs)
            for output in self.outputs:
                output.close()
            if stats_file:
                write_stats(stats_file, self.source.stats())
            if not delivered:
                log.error("%s: some records were not acknowledged before shutdown", self.name)
        return self.source.stats()


def main(prog: str, description: str, build: Callable[[argparse.Namespace], Any],
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
         argv: list[str] | None = None) -> int:
    """The `main()` of every service: arguments (plus --stats-file), logging, SIGTERM/SIGINT → stop, and start-up
    errors reported in one line with exit status 2. `build(args)` returns the service: anything with
    `run(stop, stats_file)`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--stats-file", type=Path, help="keep the service's counters in this JSON file")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_redaction()  # no secret (camera credentials, SASL password) in any log line
    name = prog.split()[-1]
    try:
        service = build(args)
    except StartupError as exc:
        logging.getLogger(f"vigil.{name}").error("%s", exc)
        return 2
    metrics_settings = getattr(service, "settings", None) or Settings()
    try:
        registered = expose(metrics_settings, name)
    except OSError as exc:
        logging.getLogger(f"vigil.{name}").error("cannot serve metrics on %s:%d: %s", metrics_settings.metrics_host,
                                                 metrics_settings.metrics_port, exc)
        return 2
    configure_tracing(metrics_settings, name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        service.run(stop, args.stats_file)
    finally:
        flush_traces()
        if registered:
            registered.unlink(missing_ok=True)
    return 0
