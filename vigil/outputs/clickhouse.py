"""The ClickHouse output: records buffered per table and inserted in batches with clickhouse-connect.

Tables are ReplacingMergeTree keyed by each record's deterministic id, so a batch inserted again after a crash (insert
done, offsets not yet committed) replaces rows instead of double-counting. An outage stalls and retries the insert.
A row its table's column types refuse is refused at write (ValueError, so the sink dead-letters that one record)
instead of failing the whole batch, which would otherwise be retried forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from vigil.config import Settings
from vigil.metrics import EVENTS, ROWS_INSERTED
from vigil.outputs.base import Output
from vigil.outputs.clickhouse_rows import NOT_STORED, TABLES
from vigil.runtime import retry
from vigil.store.client import connect
from vigil.store.row_check import RowCheck
from vigil.telemetry import context_from, tracer
from vigil.topics import Topic

log = logging.getLogger("vigil.outputs.clickhouse")
COLUMNS = {table.name: table.columns for table in TABLES.values()}


class ClickHouseOutput(Output):
    name = "clickhouse"

    def __init__(self, settings: Settings, client=None):
        self.client = client or connect(settings)
        self.buffer: dict[str, list] = defaultdict(list)
        self.stored: dict[str, int] = defaultdict(int)
        self.traced: list[tuple[dict, int, str, str]] = []  # buffered frames' (trace context, when, frame, camera)
        self._tracer = tracer("vigil.sink")
        self._checks: dict[str, RowCheck] = {}

    @staticmethod
    def check_topics(topics: list[Topic]) -> None:
        """Fail at start-up if a consumed topic carries a record type with no table (and not declared unstored)."""
        missing = sorted({f"{r} on {t.name}" for t in topics for r in t.records if r not in TABLES and r not in NOT_STORED})
        if missing:
            raise ValueError(f"no ClickHouse table for {missing}; add one to vigil/outputs/clickhouse_rows.py TABLES")

    def accepts(self, topic: Topic, record_type: str) -> bool:
        return record_type in TABLES

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        table = TABLES[record_type]
        try:
            row = table.row(record)
        except (OverflowError, IndexError) as exc:  # e.g. a timestamp past what a datetime holds
            raise ValueError(f"{table.name}: {exc}") from exc
        check = self._check(table.name)
        if check is not None and (why := check.why(row)) is not None:
            raise ValueError(f"ClickHouse would refuse it: {why}")
        self.buffer[table.name].append(row)
        if record_type == "DetectionBatch" and record["frame"].get("trace_context"):
            frame = record["frame"]
            self.traced.append((frame["trace_context"], time.time_ns(), frame["frame_id"], frame["camera_id"]))
        if record_type == "AnomalyEvent" or (record_type == "Incident" and record.get("revision") == 1):
            EVENTS.labels(record_type, record.get("kind", "")).inc()  # an incident counts once, at its first revision

    def _check(self, name: str) -> RowCheck | None:
        """The table's row check, from the store's own column types (DESCRIBE TABLE, once per table). None while the
        store cannot be asked (an outage): the row is then buffered unchecked and the insert decides."""
        if name not in self._checks:
            try:
                described = self.client.query(f"DESCRIBE TABLE {name}").result_rows
            except Exception as exc:  # the store is down: flush rides it out
                log.warning("cannot read the column types of %s (%s); rows go unchecked until it answers", name,
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
                return None
            self._checks[name] = RowCheck(name, COLUMNS[name], {row[0]: row[1] for row in described})
        return self._checks[name]

    def pending(self) -> int:
        return sum(len(rows) for rows in self.buffer.values())

    def flush(self, stop: threading.Event | None = None) -> bool:
        for name in list(self.buffer):
            rows = self.buffer[name]
            if rows:
                ok, _ = retry(lambda: self.client.insert(name, rows, column_names=COLUMNS[name]), stop,
                              f"insert into {name}", log)
                if not ok:
                    return False  # stopped during an outage: the rows come again from the uncommitted offsets
                self.stored[name] += len(rows)
                ROWS_INSERTED.labels(name).inc(len(rows))
                if name == "detections":
                    self._trace_inserted()
            del self.buffer[name]
        return True

    def _trace_inserted(self) -> None:
        """A `sink.insert` span per frame whose detection row just landed: from buffering to the insert's end, a
        child of the frame's trace (ingest → infer → here)."""
        for context, began, frame_id, camera_id in self.traced:
            span = self._tracer.start_span("sink.insert", context=context_from(context), start_time=began,
                                           attributes={"camera.id": camera_id, "frame.id": frame_id,
                                                       "db.table": "detections"})
            span.end()
        self.traced.clear()

    def stats(self) -> dict:
        return {"stored": dict(self.stored)}
