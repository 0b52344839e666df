"""A camera's health metrics follow its stream: online while it streams, 0 when OFFLINE (the alert's input), and no
series once a file played to its end, so an ended replay raises no offline alert."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.ingest.camera import CameraWorker
from services.ingest.settings import IngestSettings
from vigil.cameras import Camera


def test_online_offline_and_ended(tmp_path):
    worker = CameraWorker(Camera(id="gauge-cam", url="/dev/null"), IngestSettings(data_dir=tmp_path),
                          lambda *a: None, lambda *a: None)
    value = lambda: REGISTRY.get_sample_value("vigil_camera_online", {"camera": "gauge-cam"})  # noqa: E731
    worker._set_state("ONLINE")
    assert value() == 1
    worker._set_state("OFFLINE", "connection refused")
    assert value() == 0
    worker._set_state("ENDED", "end of file")
    assert value() is None
