"""Training from ClickHouse: detections of a normal period → windows → autoencoder → validated, versioned artifact in
the registry; approval; a clear error when the period holds too little data."""

import datetime

import numpy as np
import pytest

from jobs.anomaly.synthetic import as_detection_batch, normal_traffic
from services.anomaly.train import train_camera
from vigil.avro_codec import AvroCodec
from vigil.model_registry import AnomalySettings, Registry
from vigil.outputs.clickhouse_rows import DETECTION_COLUMNS, FRAME_COLUMNS, detection_row, frame_row
from vigil.store.client import connect

pytestmark = pytest.mark.slow


def test_train_from_clickhouse_validate_version_and_approve(stack, tmp_path):
    settings = AnomalySettings(**{**stack.model_dump(), "anomaly_registry": tmp_path / "registry"})
    camera = "train-cam"
    t0 = (int(datetime.datetime.now().timestamp()) - 3600) // 2 * 2000  # inside the tables' TTL, on a window boundary
    codec = AvroCodec()
    records = [codec.decode(as_detection_batch(f, camera)) for f in normal_traffic(t0, 180, 1)]
    client = connect(settings)
    client.insert("frames", [frame_row(r["frame"]) for r in records], column_names=FRAME_COLUMNS)
    client.insert("detections", [detection_row(r) for r in records], column_names=DETECTION_COLUMNS)
    since = datetime.datetime.fromtimestamp(t0 / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    until = datetime.datetime.fromtimestamp(t0 / 1000 + 180, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    result = train_camera(settings, camera, since, until, epochs=200, approve=True)
    validation = result["validation"]
    assert result["version"] == "v1" and result["approved"] and validation["passed"], validation
    assert validation["train_windows"] + validation["holdout_windows"] == 90 - 5, "2 s windows minus the cold ones"
    registry = Registry(settings.registry_root)
    assert registry.approved(camera) == "v1"
    model = registry.load(camera, "v1")
    errors, top = model.score(np.zeros((1, len(model.mean)), dtype=np.float32))
    assert errors[0] > validation["holdout_error"]["p99"], "an empty scene is unlike the busy lane it learned"

    second = train_camera(settings, camera, since, until, epochs=50)
    assert second["version"] == "v2" and not second["approved"] and registry.approved(camera) == "v1"

    with pytest.raises(ValueError, match="only 0 windows"):
        train_camera(settings, "no-such-camera", since, until)
