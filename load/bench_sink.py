"""Sink capacity (rows/s into ClickHouse), message sizes and producer throughput, on a private embedded stack (broker
and chDB store; no Triton): the figures the Terraform sizing model (infra/terraform/capacities.json) needs.

N cameras x M seconds at 5 fps of FrameRef (frames.v1) and DetectionBatch (detections.v1, B boxes each, tracked) are
produced as a backlog, as ingest and infer publish them; then the sink (`python -m services.sink`, a child process,
as deployed: batches of VIGIL_SINK_MAX_ROWS) stores them. Rows/s = rows stored between the first and the last row
seen in ClickHouse, over that time (so the sink's start-up is not counted). Message sizes are the encoded Avro values.

    .venv/bin/python load/bench_sink.py --cameras 40 --seconds 60 --out load/results/sink.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.stack import manager
from load._harness import env_for, machine, private_settings, stop_process_groups
from load._results import save
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT
from vigil.kafka_io import ensure_topics, make_producer
from vigil.store.client import connect
from vigil.topics import DETECTIONS, FRAMES

FRAME_MS = 200


def records(camera: str, sequence: int, ts_ms: int, boxes: int, rng) -> tuple[dict, dict]:
    frame_id = f"{camera}:{ts_ms}:{sequence}"
    ref = {"frame_id": frame_id, "camera_id": camera, "capture_ts_ms": ts_ms, "sequence": sequence, "width": 1280,
           "height": 720, "encoding": "jpeg", "uri": f"s3://vigil-frames/frames/{camera}/2026120207/{frame_id}.jpg",
           "ingest_ts_ms": ts_ms + 4, "trace_context": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}}
    xy = rng.uniform(0, 600, size=(boxes, 2))
    xyxy = np.hstack([xy, xy + rng.uniform(20, 120, size=(boxes, 2))]).reshape(-1).round(1).tolist()
    batch = {"batch_id": frame_id, "frame": ref, "model_name": "yolox_nano", "model_version": "1", "xyxy": xyxy,
             "class_id": rng.integers(0, 8, boxes).tolist(), "confidence": rng.uniform(0.3, 1, boxes).round(3).tolist(),
             "track_id": (9617917500000 + rng.integers(0, 50, boxes)).tolist(), "inference_ts_ms": ts_ms + 120,
             "ended_track_ids": []}
    return ref, batch


def count(client) -> int:
    return sum(client.query(f"SELECT count() FROM {table}").result_rows[0][0] for table in ("frames", "detections"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=60, help="capture seconds per camera (5 fps)")
    parser.add_argument("--boxes", type=int, default=10, help="detections per frame")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = private_settings()
    work = settings.data_dir
    manager.up(settings, only=["broker", "clickhouse"], log=lambda *_: None)
    procs: dict[str, subprocess.Popen] = {}
    try:
        ensure_topics(settings)
        codec, producer, rng = AvroCodec(), make_producer(settings), np.random.default_rng(7)
        frames_topic, detections_topic = FRAMES.deployed(settings), DETECTIONS.deployed(settings)
        start_ms = int(time.time() * 1000) - args.seconds * 1000
        sizes = {"FrameRef": [], "DetectionBatch": []}
        encoded = []
        for step in range(args.seconds * 1000 // FRAME_MS):
            for c in range(args.cameras):
                camera = f"cam-{c:04d}"
                ref, batch = records(camera, step, start_ms + step * FRAME_MS, args.boxes, rng)
                encoded.append((camera.encode(), codec.encode("FrameRef", ref), codec.encode("DetectionBatch", batch),
                                ref["capture_ts_ms"]))
        for _, ref, batch, _ in encoded:
            sizes["FrameRef"].append(len(ref))
            sizes["DetectionBatch"].append(len(batch))
        produced_bytes = sum(len(r) + len(b) for _, r, b, _ in encoded)
        begin = time.monotonic()
        for key, ref, batch, ts_ms in encoded:
            producer.produce(frames_topic, key=key, value=ref, timestamp=ts_ms)
            producer.produce(detections_topic, key=key, value=batch, timestamp=ts_ms)
            producer.poll(0)
        producer.flush(60)
        produce_s = time.monotonic() - begin
        expected = 2 * len(encoded)
        env = env_for(settings, sink_topics=json.dumps([FRAMES.name, DETECTIONS.name]))
        with open(work / "sink.log", "wb") as log:
            procs["sink"] = subprocess.Popen([sys.executable, "-m", "services.sink"], env=env, cwd=REPO_ROOT,
                                             start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        client = connect(settings)
        first = None
        deadline = time.monotonic() + 600
        stored = 0
        while time.monotonic() < deadline:
            stored = count(client)
            now = time.monotonic()
            if stored and first is None:
                first = (now, stored)
            if stored >= expected:
                break
            time.sleep(0.25)
        last = (time.monotonic(), stored)
    finally:
        stop_process_groups(procs)
        manager.down(settings)
    rows_per_s = (last[1] - first[1]) / (last[0] - first[0]) if first and last[0] > first[0] else None
    result = {"benchmark": "sink", "machine": machine(), "cameras": args.cameras, "seconds": args.seconds,
              "fps_per_camera": 1000 // FRAME_MS, "boxes_per_frame": args.boxes, "frames": len(encoded),
              "rows_expected": expected, "rows_stored": last[1],
              "rows_per_frame": 2, "sink_max_rows": 5000,
              "sink_rows_per_s": round(rows_per_s, 1) if rows_per_s else None,
              "sink_frames_per_s": round(rows_per_s / 2, 1) if rows_per_s else None,
              "message_bytes": {name: {"mean": round(float(np.mean(v)), 1), "max": int(np.max(v))}
                                for name, v in sizes.items()},
              "produce": {"messages": expected, "seconds": round(produce_s, 2),
                          "messages_per_s": round(expected / produce_s, 1),
                          "mb_per_s": round(produced_bytes / produce_s / 1e6, 2)},
              "note": "broker (Tansu), chDB store, producer and sink share the machine; the sink runs alone after "
                      "the backlog was produced"}
    save(args.out, result)
    return 0 if last[1] >= expected else 1


if __name__ == "__main__":
    sys.exit(main())
