"""Back-pressure for replays at `pace: fast`: published frames wait while the pipeline is behind.

A file replayed as fast as it decodes outruns any detector; without back-pressure infer falls behind, drops what is
older than `max_lag_ms`, and the decoding takes the cores the detector needs. With `VIGIL_FAST_PACE_MAX_BACKLOG` set,
a fast camera publishes its next frame only while fewer than that many `frames.v1` records are published and not yet
committed by the consumer group `VIGIL_FAST_PACE_GROUP` (infer's), so a backfill runs at the pipeline's own speed and
loses nothing. Paced (`native`) cameras and live streams never wait: their frames keep real time.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from vigil.kafka_io import client_config, group_name
from vigil.topics import FRAMES

log = logging.getLogger("vigil.ingest")


class Backlog:
    def __init__(self, settings, max_frames: int, group: str, check_every_s: float = 0.1):
        self.max_frames, self.group, self.check_every_s = max_frames, group, check_every_s
        self.topic = FRAMES.deployed(settings)
        # a client of the group that never subscribes: it reads the group's committed offsets and does not join it
        self.consumer = Consumer({**client_config(settings), "group.id": group_name(settings, group),
                                  "enable.auto.commit": False})
        self._lock = threading.Lock()
        self._checked, self._backlog, self._logged = 0.0, 0, 0.0
        self._since = 0  # frames let through since the last measurement (not all of them reached the broker yet)
        self.waits = 0

    def measure(self, timeout_s: float = 5.0) -> int:
        """Records on `frames.v1` that the group has not committed yet (all of them while it has committed none)."""
        partitions = self.consumer.list_topics(self.topic, timeout=timeout_s).topics[self.topic].partitions
        committed = self.consumer.committed([TopicPartition(self.topic, p) for p in partitions], timeout=timeout_s)
        backlog = 0
        for tp in committed:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            backlog += max(0, high - (tp.offset if tp.offset >= 0 else low))
        return backlog

    def current(self) -> int:
        """The last measured backlog (refreshed every `check_every_s`) plus the frames let through since."""
        with self._lock:
            if time.monotonic() - self._checked >= self.check_every_s:
                try:
                    self._backlog = self.measure()
                except KafkaException as exc:  # the broker is away: hold back rather than flood it on return
                    log.warning("fast-pace back-pressure: cannot read the backlog of %s: %s", self.group, exc)
                    self._backlog = self.max_frames
                self._checked, self._since = time.monotonic(), 0
            return self._backlog + self._since

    def wait_for_room(self, stop: threading.Event) -> bool:
        """Return once the backlog is under the limit (True), or False when `stop` was set while waiting."""
        waited = False
        while (backlog := self.current()) >= self.max_frames:
            if not waited:
                self.waits, waited = self.waits + 1, True
            if time.monotonic() - self._logged > 30:
                log.info("fast-pace replay waits: %d frames not yet taken by %s (limit %d)", backlog, self.group,
                         self.max_frames)
                self._logged = time.monotonic()
            if stop.wait(self.check_every_s / 2):
                return False
        with self._lock:
            self._since += 1
        return True

    def close(self) -> None:
        self.consumer.close()
