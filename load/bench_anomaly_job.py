"""Anomaly job throughput and latency on the real broker and the PyFlink MiniCluster.

1. Throughput: C cameras x F synthetic frames (normal traffic, one wrong-way car at the end of each camera's stream)
   are produced to detections.v1 while the job runs; records/s = records / (first produce → last camera's final
   event on events.v1).
2. Latency: frames produced live at 5 fps per camera for S seconds, stamped with the wall clock, with wrong-way cars
   and unusual (crowd) windows; latency = event arrival on events.v1 - capture time of the frame that completed the
   event (rules) or the window end (autoencoder, which also waits for the watermark).

    .venv/bin/python load/bench_anomaly_job.py --cameras 8 --frames 1500 --out load/results/anomaly-job.json
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from vigil.features import FEATURES, windowed_features  # noqa: E402
from jobs.anomaly.synthetic import LANE, as_detection_batch, frame, normal_traffic  # noqa: E402
from load._harness import machine, percentiles, private_settings  # noqa: E402
from vigil.anomaly_model import train  # noqa: E402
from vigil.model_registry import Registry  # noqa: E402
from vigil.avro_codec import AvroCodec  # noqa: E402
from vigil.config import REPO_ROOT  # noqa: E402
from vigil.kafka_io import ensure_topics, make_consumer, make_producer  # noqa: E402
from app.stack import manager  # noqa: E402


def wrong_way_car(start_ms, track):
    return [frame(start_ms + i * 200, [(track, 2, 600, 420 - 12 * i)]) for i in range(30)]


def crowd(start_ms):
    return [frame(start_ms + i * 200, [(90_000 + k, 0, 30 + 20 * k, 30) for k in range(3)]) for i in range(20)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1500, help="throughput phase: frames per camera")
    parser.add_argument("--live-seconds", type=float, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = private_settings()
    manager.up(settings, only=["broker"], log=lambda *_: None)
    ensure_topics(settings)
    cameras = [f"bench-{i:02d}" for i in range(args.cameras)]
    work = settings.data_dir
    (work / "cameras.yaml").write_text(yaml.safe_dump({"cameras": [{"id": c, "url": "rtsp://x/y", "zones": LANE} for c in cameras]}))
    registry = Registry(work / "registry")
    vectors = np.stack([v for _, _, v in windowed_features(normal_traffic(0, 240, 1), 2000)])
    model = train(vectors, FEATURES)
    errors, _ = model.score(vectors)
    for camera in cameras:
        registry.approve(camera, registry.save(camera, model, {"validation": {"holdout_error": {"p99": float(np.quantile(errors, 0.99))}}}))
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VIGIL_DATA_DIR": str(work),
           "VIGIL_ANOMALY_REGISTRY": str(work / "registry")}
    job = subprocess.Popen([sys.executable, "-m", "jobs.anomaly", "--cameras", str(work / "cameras.yaml"),
                            "--checkpoint-dir", str(work / "checkpoints")], env=env, cwd=REPO_ROOT,
                           stdout=open(work / "job.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    codec, producer, topic = AvroCodec(), make_producer(settings), settings.topic("detections.v1")
    consumer = make_consumer(settings, f"bench-{uuid.uuid4().hex[:6]}", [settings.topic("events.v1")])
    events: list[tuple[int, dict]] = []

    def poll_until(done, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done():
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                events.append((time.time_ns() // 1_000_000, codec.decode(message.value(), expected="AnomalyEvent")))
        return done()

    try:
        # warm-up: the job is running when one event per camera has come back
        t0 = int(time.time() * 1000) - 3_600_000
        for i, camera in enumerate(cameras):
            for f in wrong_way_car(t0, 1_000 + i):
                producer.produce(topic, key=camera.encode(), value=as_detection_batch(f, camera), timestamp=f.ts_ms)
        producer.flush(30)
        assert poll_until(lambda: len({e["camera_id"] for _, e in events}) == len(cameras), 180), (work / "job.log").read_text()[-2000:]

        # 1. throughput
        t1, records = t0 + 60_000, 0
        begin = time.monotonic()
        for i, camera in enumerate(cameras):
            frames = normal_traffic(t1, args.frames / 5, 10_000 * (i + 1))[: args.frames - 30]
            frames += wrong_way_car(frames[-1].ts_ms + 200, 2_000 + i)
            for f in frames:
                producer.produce(topic, key=camera.encode(), value=as_detection_batch(f, camera), timestamp=f.ts_ms)
                producer.poll(0)
            records += len(frames)
        producer.flush(60)
        finals = {f"{camera}:wrong_way:{2_000 + i}" for i, camera in enumerate(cameras)}
        assert poll_until(lambda: finals <= {e["event_id"] for _, e in events}, 900), "throughput phase did not finish"
        elapsed = time.monotonic() - begin

        # 2. live latency
        before = len(events)
        start = time.time()
        step = 0
        while time.time() - start < args.live_seconds:
            now = int(time.time() * 1000)
            for i, camera in enumerate(cameras):
                second = (now // 1000) % 20
                if second < 6:
                    objects = [(3_000 + i * 100 + (now // 20_000) % 100, 2, 600, 420 - 60 * (now % 20_000) / 1000)]
                elif second < 10:
                    objects = [(90_000 + k, 0, 30 + 20 * k, 30) for k in range(3)]
                else:
                    objects = [(4_000 + i * 100 + (now // 20_000) % 100, 2, 200, 60 * ((now % 20_000) / 1000 - 10))]
                f = frame(now, objects)
                producer.produce(topic, key=camera.encode(), value=as_detection_batch(f, camera), timestamp=now)
            producer.poll(0)
            step += 1
            poll_until(lambda: False, max(0.0, start + step * 0.2 - time.time()))
        poll_until(lambda: False, 8)
        live = [(r, e) for r, e in events[before:] if e["window_end_ms"] >= start * 1000]  # not late throughput-phase windows
        rule_latency = [r - e["window_end_ms"] for r, e in live if e["kind"] != "autoencoder"]
        ae_latency = [r - e["window_end_ms"] for r, e in live if e["kind"] == "autoencoder"]
    finally:
        consumer.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        manager.down(settings)
    result = {"benchmark": "anomaly_job", "machine": machine(), "cameras": args.cameras, "parallelism": settings.flink_parallelism,
              "throughput": {"records": records, "seconds": round(elapsed, 1), "records_per_s": round(records / elapsed, 1)},
              "live": {"seconds": args.live_seconds, "frames_per_s_offered": args.cameras * 5,
                       "rule_events": len(rule_latency), "rule_event_latency_ms": percentiles(rule_latency),
                       "autoencoder_events": len(ae_latency), "autoencoder_event_latency_ms": percentiles(ae_latency)}}
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
