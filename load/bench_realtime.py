"""Real-time path benchmark: N paced cameras replaying the sample footage through ingest → Kafka → Triton → tracker →
Kafka → ClickHouse, on a private embedded stack. Reports sustained frames/s, per-hop latency percentiles, drops and
the RSS of every service and stack part; then runs the same decode + detect + track code in one process, without
Kafka or Triton, and reports the ratio pipeline/raw. `--pace fast` (capacity mode) replays as fast as the pipeline
takes the frames: ingest holds each camera back while eight batches of frames wait for infer (back-pressure,
`VIGIL_FAST_PACE_MAX_BACKLOG`), so nothing is dropped and the sustained rate is the pipeline's own.

    .venv/bin/python load/bench_realtime.py --cameras 2 --seconds 60 --out load/results/realtime-2.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import av  # noqa: E402
import yaml  # noqa: E402

from app.inprocess import detector as inprocess_detector  # noqa: E402
from services.infer.gate import GateSettings, MotionGate  # noqa: E402
from load._harness import FOOTAGE, Services, env_for, machine, percentiles, private_settings, stack  # noqa: E402
from vigil.tracker import ByteTracker, detect_and_track  # noqa: E402
from vigil.sampling import Sampler  # noqa: E402
from vigil.detections import Detections  # noqa: E402
from vigil.store.client import connect  # noqa: E402


def run_pipeline(cameras: int, seconds: float, fps: float, pace: str, detector: str, gate: bool, reid: bool) -> dict:
    settings = private_settings()
    config = {"cameras": [{"id": f"cam-{i:02d}", "url": str(FOOTAGE[i % 2]), "fps": fps, "pace": pace, "loop": True}
                          for i in range(cameras)]}
    cameras_file = settings.data_dir / "cameras.yaml"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cameras_file.write_text(yaml.safe_dump(config))
    with stack(settings):
        # capacity mode: the replays wait on infer's backlog (back-pressure) instead of outrunning it into stale drops
        capacity = {"fast_pace_max_backlog": str(8 * 8), "max_lag_ms": "0"} if pace == "fast" else {}
        services = Services(settings, env_for(settings, detector_model=detector, motion_gate=str(gate).lower(),
                                              **capacity))
        try:
            services.start("sink")
            services.start("infer")
            if reid:  # as deployed: the re-ID embed service behind infer, sharing the cores and Triton
                services.start("reid")
            time.sleep(3)  # consumers join before frames flow
            started = time.time()
            services.start("ingest", "--cameras", str(cameras_file), "--max-seconds", str(seconds))
            while services.procs["ingest"].poll() is None:
                services.sample_rss()
                time.sleep(1)
            ingest_end = time.time()
            published = sum(c["frames_published"] for c in services.read("ingest").values())
            client = connect(settings)
            deadline = time.time() + 120
            while time.time() < deadline:  # drain: everything published reaches ClickHouse (or was dropped)
                infer = services.read("infer")
                stored = client.query("SELECT count() FROM detections FINAL").result_rows[0][0]
                if stored + sum(infer.get("dropped", {}).values()) + infer.get("dead_letters", 0) >= published:
                    break
                services.sample_rss()
                time.sleep(1)
            infer = services.read("infer")
            # steady state: skip the first and last 10% of the run
            lo, hi = started + 0.1 * seconds, started + 0.9 * seconds
            window = client.query(
                "SELECT count() FROM detections FINAL WHERE capture_ts >= fromUnixTimestamp64Milli({lo:Int64}) "
                "AND capture_ts < fromUnixTimestamp64Milli({hi:Int64})",
                parameters={"lo": int(lo * 1000), "hi": int(hi * 1000)}).result_rows[0][0]
            hops = client.query(
                "SELECT dateDiff('millisecond', capture_ts, ingest_ts), dateDiff('millisecond', capture_ts, inference_ts), "
                "dateDiff('millisecond', inference_ts, stored_ts), dateDiff('millisecond', capture_ts, stored_ts) "
                "FROM detections FINAL WHERE capture_ts >= fromUnixTimestamp64Milli({lo:Int64}) "
                "AND capture_ts < fromUnixTimestamp64Milli({hi:Int64})",
                parameters={"lo": int(lo * 1000), "hi": int(hi * 1000)}).result_columns
            names = ["capture_to_frameref_ms", "capture_to_detections_ms", "detections_to_clickhouse_ms", "capture_to_clickhouse_ms"]
            latency = {name: percentiles(col) for name, col in zip(names, hops)} if hops else {}
            stored = client.query("SELECT count() FROM detections FINAL").result_rows[0][0]
        finally:
            services.stop_all()
    offered = cameras * fps if pace == "native" else None
    cpu = services.cpu_summary()
    sustained = window / (0.8 * seconds)
    dropped = sum(infer.get("dropped", {}).values())
    return {
        "cameras": cameras, "seconds": seconds, "fps_per_camera": fps, "pace": pace, "detector": detector,
        "motion_gate": gate, "reid_embed_service": reid,
        "gate": {k: infer.get(k) for k in ("gate_inferred", "gate_skipped", "gate_skipped_share")},
        "offered_frames_per_s": offered, "frames_published": published, "frames_stored": stored,
        "frames_dropped_stale": dropped, "dead_letters": infer.get("dead_letters", 0),
        "sustained_frames_per_s": round(sustained, 2), "latency_ms": latency, "rss_mb": services.rss_summary(),
        "cpu_seconds": cpu, "frames_per_cpu_second": round(stored / max(1e-9, sum(cpu.values())), 2),
        "keeps_up": bool(offered and dropped == 0 and sustained >= 0.95 * offered
                         and (latency.get("capture_to_detections_ms", {}).get("p95") or 1e9) < 2000),
        "drain_seconds": round(time.time() - ingest_end, 1),
    }


def run_raw(frames_wanted: int, fps: float, name: str, gate_on: bool) -> dict:
    """Decode + sample + (gate) + detect + track in one process: no Kafka, no Triton, no JPEG round trip."""
    detector = inprocess_detector(name)
    gate = MotionGate(GateSettings(enabled=gate_on))
    processed, started = 0, time.perf_counter()
    while processed < frames_wanted:
        for index, path in enumerate(FOOTAGE):
            tracker, sampler = ByteTracker(), Sampler(fps)
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    if not sampler.take(frame.time):
                        continue
                    rgb, camera = frame.to_ndarray(format="rgb24"), f"raw-{index}"
                    if gate.needs_inference(camera, round(frame.time * 1000), rgb, len(tracker.tracks)):
                        detect_and_track(detector, tracker, camera, rgb)
                    else:
                        tracker.update(Detections.empty())
                    processed += 1
                    if processed >= frames_wanted:
                        break
            if processed >= frames_wanted:
                break
    elapsed = time.perf_counter() - started
    return {"frames": processed, "seconds": round(elapsed, 2), "frames_per_s": round(processed / elapsed, 2),
            "detector": name, **gate.stats()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fps", type=float, default=5.0, help="sampled frames per second per camera")
    parser.add_argument("--pace", choices=["native", "fast"], default="native", help="fast = as fast as possible (capacity)")
    parser.add_argument("--raw-frames", type=int, default=600)
    parser.add_argument("--detector", default="yolox_nano", help="Triton detector (infer's VIGIL_DETECTOR_MODEL)")
    parser.add_argument("--no-gate", action="store_true", help="detect every frame (motion gate off)")
    parser.add_argument("--reid", action="store_true", help="also run the re-ID embed service, as deployed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pipeline = run_pipeline(args.cameras, args.seconds, args.fps, args.pace, args.detector, not args.no_gate, args.reid)
    raw = run_raw(args.raw_frames, args.fps, args.detector, not args.no_gate)
    result = {"benchmark": "realtime", "machine": machine(), "pipeline": pipeline, "raw_in_process": raw,
              "ratio_pipeline_over_raw": round(pipeline["sustained_frames_per_s"] / raw["frames_per_s"], 3)}
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
