"""The re-ID stage, run by the embed service (`service.py`) on the tracked frames infer published on `detections.v1`.

For every tracked frame it keeps the track's summary up to date and crops every n-th box; after each batch it
embeds those crops in one batched Triton call, writes best crops to the frame store and publishes on `tracks.v1`:
a `TrackSummary` when a track ends, every `track_summary_interval_ms` of capture time while it lasts, when its camera
falls silent and on shutdown, and `TrackProgress` heartbeats (at most one per camera per second) that advance the
re-ID job's event time while no track ends.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
from pydantic import Field

from services.reid.embedder import TritonEmbedder
from services.reid.summaries import TrackState, TrackSummaries
from vigil.config import Settings
from vigil.detections import Detections
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import StartupError, retry
from vigil.topics import TRACKS

log = logging.getLogger("vigil.reid.stage")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ReidStageSettings(Settings):
    reid_model: str = Field("reid_learned", description="Triton embedder for track summaries on tracks.v1: reid_color, "
                            "reid_learned, reid_pretrained, or '' for none (summaries then carry no embedding).")
    reid_embed_every: int = Field(2, ge=1, description="Embed every n-th detection of a track.")
    reid_max_samples: int = Field(32, ge=1, description="Most embeddings kept per track for its robust mean.")
    track_summary_interval_ms: int = Field(30_000, ge=1000, description="Periodic summary of a live track (capture time).")


class ReidStage:
    def __init__(self, settings: ReidStageSettings, output: KafkaOutput, store, embedder: TritonEmbedder | None = None):
        self.output, self.store = output, store
        self.embedder = embedder or (self._embedder(settings) if settings.reid_model else None)
        self.summaries = TrackSummaries(settings.reid_embed_every, settings.reid_max_samples,
                                        settings.track_summary_interval_ms)
        self.ended: list[tuple[str, list[int]]] = []  # tracks that ended in the current micro-batch
        self.latest_in_batch: dict[str, int] = {}
        self.last_capture_ms: dict[str, int] = {}
        self.last_progress_wall: dict[str, float] = {}
        self.published = 0

    @staticmethod
    def _embedder(settings: ReidStageSettings) -> TritonEmbedder:
        try:
            return TritonEmbedder(settings.triton_url, settings.reid_model)
        except Exception as exc:  # tritonclient: model unknown or not loaded
            raise StartupError(f"re-ID embedder {settings.reid_model!r} is not served by Triton at {settings.triton_url} "
                               f"({str(exc).splitlines()[0]}); add it to VIGIL_TRITON_MODELS, or set VIGIL_REID_MODEL='' "
                               "to publish track summaries without embeddings") from None

    # --- called by the embed service ---------------------------------------------------------------------------
    def observe(self, camera_id: str, capture_ts_ms: int, tracked: Detections, rgb: np.ndarray,
                ended_track_ids: list[int]) -> None:
        """One tracked frame, and the confirmed tracks the tracker dropped on it."""
        self.summaries.observe(camera_id, capture_ts_ms, tracked, rgb)
        self.ended.append((camera_id, list(ended_track_ids)))
        self.latest_in_batch[camera_id] = max(capture_ts_ms, self.latest_in_batch.get(camera_id, 0))

    def finish_batch(self, stop: threading.Event | None) -> bool:
        """Embed the batch's crops (retrying through Triton outages), then publish what is due. False = stopped."""
        if not self._embed_pending(stop):
            return False
        for camera_id, track_ids in self.ended:
            self._publish(self.summaries.end(camera_id, track_ids), final=True)
        for camera_id, latest in self.latest_in_batch.items():
            self.last_capture_ms[camera_id] = max(latest, self.last_capture_ms.get(camera_id, 0))
            self._publish(self.summaries.due(camera_id, latest), final=False)
            self._publish_progress(camera_id)
        self.ended, self.latest_in_batch = [], {}
        return True

    def camera_ended(self, camera_id: str, resumable: bool = True) -> int:
        """Every open track of a silent (or, with resumable=False, stopping) camera ended: final summaries and a
        heartbeat. Returns how many summaries. A silent camera's tracks may resume (see `TrackSummaries`)."""
        before = self.published
        track_ids = self.summaries.open_track_ids(camera_id)
        self._publish(self.summaries.end(camera_id, track_ids, resumable=resumable), final=True)
        if camera_id in self.last_capture_ms:
            self._publish_progress(camera_id, force=True)
        return self.published - before

    def stats(self) -> dict:
        return {"track_summaries": self.published, "open_tracks": len(self.summaries.tracks)}

    # --- inside ------------------------------------------------------------------------------------------------
    def _embed_pending(self, stop) -> bool:
        crops = self.summaries.pending_crops()
        if crops is None or self.embedder is None:
            self.summaries.drop_pending()
            return True
        ok, embeddings = retry(lambda: self.embedder.embed(crops), stop, "embedder call", log)
        if ok:
            self.summaries.add_embeddings(embeddings)
        return ok

    def _publish(self, states: list[TrackState], final: bool) -> None:
        for state in states:
            crop_uri = None
            if state.best_crop is not None:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(state.best_crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    crop_uri = self.store.put(state.camera_id, state.track_id, state.last_seen_ms, jpeg.tobytes(), "track.jpg")
            record = self.summaries.record(state, final, self.embedder.name if self.embedder else "", crop_uri, now_ms())
            self.output.write(TRACKS, "TrackSummary", record, key=state.camera_id.encode(), timestamp_ms=state.last_seen_ms)
            self.published += 1

    def _publish_progress(self, camera_id: str, force: bool = False) -> None:
        """TrackProgress heartbeat, at most once a second per camera; its Kafka timestamp is the camera's latest
        processed capture time, which is what advances the re-ID job's watermark."""
        now = time.monotonic()
        if not force and now - self.last_progress_wall.get(camera_id, -1e9) < 1.0:
            return
        self.last_progress_wall[camera_id] = now
        until = self.last_capture_ms[camera_id]
        open_tracks = sum(1 for cam, _ in self.summaries.tracks if cam == camera_id)
        record = dict(camera_id=camera_id, processed_until_ms=until, open_tracks=open_tracks, emitted_ts_ms=now_ms())
        self.output.write(TRACKS, "TrackProgress", record, key=camera_id.encode(), timestamp_ms=until)
