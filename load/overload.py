"""Overload: twice the cameras the real-time path sustains, then back to normal. Shows what Vigil does when it is
pushed past capacity on purpose: memory stays bounded, what is dropped is counted by cause, and detections return to
real time after the extra cameras stop.

Paced cameras (wall-clock capture, as live cameras) replay the sample footage through ingest → Kafka → Triton →
tracker → Kafka → ClickHouse with the re-ID embed service behind infer, as deployed, on a private embedded stack.
`--base` cameras run for the whole test; `--extra` more join them for `--overload-s` seconds. Every second the RSS of
every service and stack part, infer's drops and the embed service's progress are sampled; afterwards the detections'
capture → detections latency is read from ClickHouse in 5-second buckets of capture time.

    .venv/bin/python load/overload.py --base 4 --extra 4 --overload-s 60 --after-s 60 --out load/results/overload.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import yaml  # noqa: E402

from app.stack.process import tree_rss_mb  # noqa: E402
from load._harness import FOOTAGE, Services, env_for, machine, percentiles, private_settings, stack  # noqa: E402
from vigil.store.client import connect  # noqa: E402

BUCKET_S = 5


def camera_file(path: Path, prefix: str, count: int, fps: float) -> Path:
    path.write_text(yaml.safe_dump({"cameras": [
        {"id": f"{prefix}-{i:02d}", "url": str(FOOTAGE[i % 2]), "fps": fps, "pace": "native", "loop": True}
        for i in range(count)]}))
    return path


def halves(samples: list[tuple[float, float]], start: float, end: float) -> dict:
    """Max RSS in the first and the second half of [start, end): growth between them means memory is not bounded."""
    middle = (start + end) / 2
    first = [mb for t, mb in samples if start <= t < middle]
    second = [mb for t, mb in samples if middle <= t < end]
    if not first or not second:
        return {}
    return {"first_half_max_mb": round(max(first), 1), "second_half_max_mb": round(max(second), 1),
            "growth_mb": round(max(second) - max(first), 1)}


def run(args) -> dict:
    settings = private_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    base_file = camera_file(settings.data_dir / "base.yaml", "base", args.base, args.fps)
    extra_file = camera_file(settings.data_dir / "extra.yaml", "extra", args.extra, args.fps)
    timeline, rss = [], {}
    with stack(settings):
        services = Services(settings, env_for(settings, max_lag_ms=args.max_lag_ms))
        try:
            services.start("sink")
            services.start("infer")
            services.start("reid")  # the re-ID embed service behind infer, as deployed
            time.sleep(3)  # consumers join before frames flow
            started = time.time()
            services.start("ingest", "--cameras", str(base_file), "--max-seconds", str(args.overload_s + args.after_s))
            services.start("ingest", "--cameras", str(extra_file), "--max-seconds", str(args.overload_s),
                           key="ingest-extra")
            overload_end = started + args.overload_s
            while services.procs["ingest"].poll() is None:
                now = time.time()
                for name, proc in services.procs.items():
                    if proc.poll() is None:
                        rss.setdefault(name, []).append((now, tree_rss_mb(proc.pid)))
                services.sample_rss()
                infer, reid = services.read("infer"), services.read("reid")
                timeline.append({"t_s": round(now - started, 1), "phase": "overload" if now < overload_end else "after",
                                 "infer_processed": infer.get("processed"),
                                 "infer_dropped_stale": sum(infer.get("dropped", {}).values()),
                                 "reid_frames_read": reid.get("frames_read"),
                                 "reid_open_tracks": reid.get("open_tracks")})
                time.sleep(1)
            ended = time.time()
            published = {key: sum(c["frames_published"] for c in services.read(key).values())
                         for key in ("ingest", "ingest-extra")}
            decode_errors = sum(c["decode_errors"] for key in ("ingest", "ingest-extra")
                                for c in services.read(key).values())
            client = connect(settings)
            deadline = time.time() + args.drain_s
            while time.time() < deadline:  # drain: everything published is stored or was dropped
                infer = services.read("infer")
                stored = client.query("SELECT count() FROM detections FINAL").result_rows[0][0]
                if stored + sum(infer.get("dropped", {}).values()) + infer.get("dead_letters", 0) >= sum(published.values()):
                    break
                services.sample_rss()
                time.sleep(1)
            infer, reid = services.read("infer"), services.read("reid")
            rows = client.query(
                "SELECT intDiv(toUnixTimestamp64Milli(capture_ts) - {t0:Int64}, {b:Int64}) AS bucket, count(), "
                "quantile(0.5)(dateDiff('millisecond', capture_ts, inference_ts)), "
                "quantile(0.95)(dateDiff('millisecond', capture_ts, inference_ts)), "
                "countIf(startsWith(camera_id, 'base-')) FROM detections FINAL GROUP BY bucket ORDER BY bucket",
                parameters={"t0": int(started * 1000), "b": BUCKET_S * 1000}).result_rows
            stored = client.query("SELECT count() FROM detections FINAL").result_rows[0][0]
            overload_latency = client.query(
                "SELECT dateDiff('millisecond', capture_ts, inference_ts) FROM detections FINAL "
                "WHERE capture_ts >= fromUnixTimestamp64Milli({lo:Int64}) AND capture_ts < fromUnixTimestamp64Milli({hi:Int64})",
                parameters={"lo": int((started + 10) * 1000), "hi": int(overload_end * 1000)}).result_columns
        finally:
            services.stop_all()
            services.stop("ingest-extra")
    buckets = [{"from_s": b * BUCKET_S, "frames": n, "p50_ms": round(p50), "p95_ms": round(p95), "base_frames": nb}
               for b, n, p50, p95, nb in rows if b >= 0]
    after = [b for b in buckets if b["from_s"] >= args.overload_s]
    recovered_at = None
    for i, bucket in enumerate(after):  # the first bucket from which every later one is back under the bar
        if all(b["p95_ms"] < args.recovered_ms for b in after[i:]):
            recovered_at = bucket["from_s"]
            break
    dropped = sum(infer.get("dropped", {}).values())
    offered = (args.base + args.extra) * args.fps
    return {
        "base_cameras": args.base, "extra_cameras": args.extra, "fps_per_camera": args.fps,
        "overload_s": args.overload_s, "after_s": args.after_s, "max_lag_ms": args.max_lag_ms,
        "offered_frames_per_s_in_overload": offered, "offered_frames_per_s_after": args.base * args.fps,
        "frames_published": published, "frames_stored": stored,
        "drops_by_cause": {"infer: stale (older than max_lag_ms)": dropped,
                           "infer: dead-lettered": infer.get("dead_letters", 0), "ingest: decode error": decode_errors},
        "unaccounted": sum(published.values()) - stored - dropped - infer.get("dead_letters", 0),
        "capture_to_detections_ms_in_overload": percentiles(overload_latency[0]) if overload_latency else {},
        "recovered_ms_bar": args.recovered_ms,
        "recovery_s_after_overload_ended": recovered_at - args.overload_s if recovered_at is not None else None,
        "reid_embed": {"frames_read": reid.get("frames_read"), "track_summaries": reid.get("track_summaries"),
                       "open_tracks": reid.get("open_tracks")},
        "rss_during_overload": {name: halves(samples, started, overload_end) for name, samples in rss.items()},
        "rss_mb": services.rss_summary(), "buckets": buckets, "timeline": timeline,
        "drain_seconds": round(time.time() - ended, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=4, help="cameras for the whole run (the sustainable count)")
    parser.add_argument("--extra", type=int, default=4, help="cameras that join for the overload")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--overload-s", type=float, default=60)
    parser.add_argument("--after-s", type=float, default=60)
    parser.add_argument("--max-lag-ms", type=int, default=15000, help="infer's VIGIL_MAX_LAG_MS (its default)")
    parser.add_argument("--recovered-ms", type=float, default=2000, help="p95 capture → detections under this = recovered")
    parser.add_argument("--drain-s", type=float, default=90)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {"benchmark": "overload", "machine": machine(), **run(args)}
    shown = {k: v for k, v in result.items() if k not in ("timeline",)}
    save(args.out, result, shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
