"""Frames that are in the store but do not decode (random bytes, a JPEG cut short, a zero-byte file), without servers:
infer's and the re-ID embed service's handlers dead-letter each as "frame unreadable", saying why, and go on. The
same frames through the running services, with the next good frame detected, are in test_bad_messages.py."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from services.infer.service import DetectAndTrack, InferSettings
from services.reid.service import EmbedTracks, ReidEmbedSettings
from services.reid.stage import ReidStage
from tests.reid.test_embed_service import Embedder, Recorded, batch_record
from vigil.framestore import LocalFrameStore
from vigil.runtime import DeadLetters, Incoming
from vigil.topics import DEADLETTER, FRAMES

JPEG = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
UNREADABLE = {"corrupt": (os.urandom(len(JPEG)), "not a decodable image"),
              "truncated": (JPEG[: len(JPEG) // 2], "not a decodable image"),
              "zero-byte": (b"", "is empty (0 bytes)")}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_infer_dead_letters_a_frame_that_does_not_decode(kind, tmp_path):
    data, reason = UNREADABLE[kind]
    settings = InferSettings(data_dir=tmp_path, max_lag_ms=0)
    output, store = Recorded(), LocalFrameStore(tmp_path / "frames")
    handler = DetectAndTrack(settings, None, output, DeadLetters(output, "infer", settings), store)
    incoming = batch_record(store, 0, [], [])
    frame = {**incoming.record["frame"], "uri": store.put("cam", 0, 1_700_000_000_000, data)}
    assert handler.handle([Incoming(FRAMES, "FrameRef", frame, incoming.message)], threading.Event())
    (letter,) = [r for topic, _, r in output.records if topic is DEADLETTER]
    assert letter["reason"].startswith("frame unreadable") and reason in letter["reason"], letter["reason"]


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_the_embed_service_dead_letters_a_frame_that_does_not_decode(kind, tmp_path):
    data, reason = UNREADABLE[kind]
    settings = ReidEmbedSettings(data_dir=tmp_path, reid_embed_every=1)
    output, store = Recorded(), LocalFrameStore(tmp_path / "frames")
    handler = EmbedTracks(settings, ReidStage(settings, output, store, Embedder()), store,
                          DeadLetters(output, "reid-embed", settings))
    incoming = batch_record(store, 0, [[40, 40, 100, 160]], [5])
    incoming.record["frame"]["uri"] = store.put("cam", 0, 1_700_000_000_000, data)
    assert handler.handle([incoming], threading.Event())
    (letter,) = [r for topic, _, r in output.records if topic is DEADLETTER]
    assert letter["reason"].startswith("frame unreadable") and reason in letter["reason"], letter["reason"]
