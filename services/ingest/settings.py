"""Ingest settings: the shared platform settings plus what only ingest needs (all `VIGIL_*` overridable)."""

from __future__ import annotations

from pydantic import Field

from vigil.config import Settings


class IngestSettings(Settings):
    jpeg_quality: int = Field(90, ge=10, le=100)
    frame_retention_hours: float = Field(24.0, gt=0, description="Frames older than this are removed from the store.")
    status_interval_s: float = Field(5.0, gt=0, description="How often each camera publishes CameraStatus.")
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the exponential reconnect back-off.")
    open_timeout_s: float = Field(5.0, gt=0, description="Network streams: give up opening after this long.")
    read_timeout_s: float = Field(10.0, gt=0, description="Network streams: a read stalled this long is a disconnect.")
    fast_pace_max_backlog: int = Field(0, ge=0, description="Files at pace=fast publish a frame only while fewer "
                                       "frames than this wait for fast_pace_group (back-pressure for backfills: "
                                       "nothing is dropped as stale); 0 = off, as fast as they decode.")
    fast_pace_group: str = Field("vigil-infer", description="The consumer group whose backlog fast replays wait on.")
    # Privacy (cameras with `privacy: {blur: [...]}` in the camera file; services/ingest/privacy.py)
    privacy_face_model: str = Field("privacy_face", description="Triton model that finds the faces to blur.")
    privacy_plate_model: str = Field("privacy_plate", description="Triton model that finds licence plates in the "
                                     "crops round the vehicles' ends.")
    privacy_vehicle_model: str = Field("yolox_nano", description="Triton detector whose vehicles are searched for "
                                       "plates (a camera's fine-tune <model>__<camera> is used when served; a camera "
                                       "file's privacy.vehicle_model wins).")
    privacy_timeout_s: float = Field(10.0, gt=0, description="A privacy detector that does not answer in this long "
                                     "has failed: the frame is withheld, never stored unblurred.")
