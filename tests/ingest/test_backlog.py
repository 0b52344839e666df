"""Back-pressure for fast replays (services/ingest/backlog.py) on the real broker: a file at pace=fast publishes no
further than the configured backlog ahead of infer's consumer group, and the whole file still comes through, in order,
once the group takes it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from services.ingest.service import IngestService
from tests.conftest import CAR_VIDEO, service_settings
from vigil.avro_codec import AvroCodec
from vigil.cameras import Camera
from vigil.kafka_io import make_consumer
from vigil.topics import FRAMES

pytestmark = pytest.mark.slow


def settle(read, deadline_s=60.0, quiet_s=2.0):
    """The value `read()` stops changing at (unchanged for `quiet_s`)."""
    value, since, deadline = read(), time.monotonic(), time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return value


def test_fast_replay_waits_for_the_consumer_group_and_loses_nothing(pipeline_settings):
    group = f"infer-{uuid.uuid4().hex[:6]}"
    settings = service_settings(pipeline_settings, type(pipeline_settings), fast_pace_max_backlog=10,
                                fast_pace_group=group)
    camera_id = f"backfill-{uuid.uuid4().hex[:6]}"
    service = IngestService([Camera(id=camera_id, url=str(CAR_VIDEO), fps=5, pace="fast")], settings)
    stop = threading.Event()
    summary: dict = {}
    thread = threading.Thread(target=lambda: summary.update(service.run(stop)), daemon=True)
    thread.start()
    worker = service.cameras.workers[0]
    try:
        held = settle(lambda: worker.counters.frames_published)
        assert 10 <= held <= 12, f"nobody consumes: the replay should hold at the backlog of 10, published {held}"
        assert service.cameras.backlog.waits >= 1

        codec, frames = AvroCodec(), []
        consumer = make_consumer(settings, group, [FRAMES.deployed(settings)])  # infer's group starts taking frames
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and (thread.is_alive() or len(frames) < worker.counters.frames_published):
                messages = consumer.consume(8, 0.5)
                frames += [codec.decode(m.value()) for m in messages if not m.error()]
                if messages:
                    consumer.commit(asynchronous=False)
        finally:
            consumer.close()
    finally:
        stop.set()
        thread.join(60)
    mine = [f["sequence"] for f in frames if f["camera_id"] == camera_id]
    assert summary[camera_id]["frames_published"] == 151  # the whole file: 377 frames at 12.5 fps sampled at 5 fps
    assert mine == list(range(151))
