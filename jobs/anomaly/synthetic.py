"""Synthetic scenes with known anomalies, as the DetectionBatch records the anomaly job reads (tests, benchmarks)."""

import numpy as np

from vigil.avro_codec import AvroCodec
from vigil.detections import DetectionFrame, Detections
from vigil.zones import Zone

LANE = [Zone(name="lane", kind="traffic", polygon=[(0, 0), (768, 0), (768, 432), (0, 432)], direction=(0, 1))]
BOX_HALF_WIDTH, BOX_HALF_HEIGHT = 20, 15


def frame(ts_ms, objects, camera_id: str = "cam-a") -> DetectionFrame:
    """objects: list of (track_id, class_id, cx, cy); each becomes a 40x30 box around its centre."""
    centres = np.array([[o[2], o[3]] for o in objects], dtype=float).reshape(-1, 2)
    half = np.array([BOX_HALF_WIDTH, BOX_HALF_HEIGHT], dtype=float)
    detections = Detections(np.hstack([centres - half, centres + half]), np.full(len(objects), 0.9),
                            [o[1] for o in objects], [o[0] for o in objects])
    return DetectionFrame(camera_id, ts_ms, 768, 432, detections)


def normal_traffic(start_ms, seconds, first_track):
    """Cars driving down the lane, one entering every 2 s at 60 px/s, already flowing when the clip starts."""
    frames = []
    for i in range(int(seconds * 5)):
        ts = start_ms + i * 200
        objects = []
        for k in range(first_track, first_track + int(seconds / 2) + 5):
            entered = start_ms + (k - first_track - 4) * 2000
            y = (ts - entered) / 1000 * 60
            if entered <= ts and y < 432:
                objects.append((k, 2, 200 + 100 * (k % 4), y))
        frames.append(frame(ts, objects))
    return frames


def as_detection_batch(f: DetectionFrame, camera_id: str = "cam-a") -> bytes:
    """Encode a synthetic frame as the DetectionBatch the job reads from Kafka."""
    ref = dict(frame_id=f"{camera_id}:{f.ts_ms}", camera_id=camera_id, capture_ts_ms=f.ts_ms, sequence=0, width=f.width,
               height=f.height, encoding="jpeg", uri="file:///x", ingest_ts_ms=f.ts_ms, trace_context={})
    return AvroCodec().encode("DetectionBatch", dict(
        batch_id=ref["frame_id"], frame=ref, model_name="synthetic", model_version="1",
        **f.detections.to_record_fields(), inference_ts_ms=f.ts_ms))
