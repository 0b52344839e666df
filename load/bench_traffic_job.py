"""Traffic job throughput and bin-close → row delay, on a private embedded stack (broker and chDB store; no Triton).

Each camera is a calibrated two-lane road with a vehicle every 6 s (lanes alternating, 37-70 km/h, some trucks),
sampled at 5 fps, as DetectionBatch records straight onto detections.v1 (record time = capture time). The job runs
as deployed (`python -m jobs.traffic`, a child process) and the sink (also a child, reading traffic.v1 only) stores
its output in ClickHouse.

- Default (backlog): after a warm-up and a pause in which every source split idles, N cameras x M minutes are
  produced as fast as the producer goes (tick by tick, all cameras), then one empty frame per camera L + 5 s later in
  capture time so the last minute closes.
  Throughput = frames / (first frame produced → the job emits the last bin of the last minute, `emitted_ts`).
- `--paced`: 5 fps per camera in real time (capture time = wall clock), M whole minutes measured after a warm-up.

Delays, per lane bin: a bin closes when the watermark passes its end E plus the allowed lateness L, that is when
the first frame with capture time ≥ E + L + out-of-orderness + 1 ms arrives; W = the wall time that frame was
produced. Reported: W → the job emits the bin (`emitted_ts`) and W → its row in ClickHouse (`stored_ts`). In the
backlog mode W is long before the job reaches that frame, so those figures measure the backlog; the paced mode gives
the live delay, and also the minute's end → its row (what an analyst waits, L included). Passages: the wall time the
frame with the crossing was produced → the row in ClickHouse.

    .venv/bin/python load/bench_traffic_job.py --cameras 8 --minutes 3 --out load/results/traffic-job.json
    .venv/bin/python load/bench_traffic_job.py --cameras 8 --minutes 2 --paced --out load/results/traffic-job-paced.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml

from app.stack import manager
from app.stack.process import tree_rss_mb
from jobs.traffic.__main__ import TrafficJobSettings
from load._harness import env_for, machine, percentiles, private_settings, stop_process_groups
from load._results import save
from services.sink.service import SinkSettings
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT
from vigil.detections import DetectionFrame, Detections
from vigil.geometry import Calibration, CountLine, DetectionZone, Lane, TrafficGeometry
from vigil.kafka_io import make_producer
from vigil.store.client import connect
from vigil.topics import DETECTIONS, TRAFFIC

FRAME_MS = 200  # 5 fps
MINUTE_MS = 60_000
HEADWAY_MS = 6_000  # one vehicle every 6 s per camera, lanes alternating
SPEEDS_KMH = [42.0, 55.0, 63.0, 48.0, 70.0, 37.0, 58.0]
FROM_Y_M, TO_Y_M, LINE_Y_M, LOOP_Y_M = 50.0, -2.0, 20.0, (8.0, 13.0)
# The road of tests/traffic/synthetic.py: 7 m wide, 60 m deep, seen in perspective (load may not import tests).
CALIBRATION = Calibration(image_points=[(300, 700), (980, 700), (700, 200), (580, 200)],
                          ground_points_m=[(0, 0), (7, 0), (7, 60), (0, 60)])
LANES_M = [(0.0, 3.5), (3.5, 7.0)]


def image(points_m) -> list[tuple[float, float]]:
    return [tuple(p) for p in CALIBRATION.to_image(np.asarray(points_m, dtype=float)).tolist()]


def road() -> TrafficGeometry:
    lanes, lines, loops = [], [], []
    for number, (x0, x1) in enumerate(LANES_M, start=1):
        lanes.append(Lane(name=f"lane{number}", number=number, direction=(0, 1),
                          polygon=image([(x0, 0), (x1, 0), (x1, 60), (x0, 60)])))
        start, end = image([(x0, LINE_Y_M), (x1, LINE_Y_M)])
        lines.append(CountLine(name=f"line{number}", lane=f"lane{number}", start=start, end=end, positive=(0, 1)))
        y0, y1 = LOOP_Y_M
        loops.append(DetectionZone(name=f"loop{number}", lane=f"lane{number}",
                                   polygon=image([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])))
    return TrafficGeometry(lanes=lanes, count_lines=lines, detection_zones=loops, calibration=CALIBRATION)


class Traffic:
    """Vehicle k of camera c starts at 50 m at `offset_c + k * HEADWAY_MS` and drives to the camera at a constant
    speed; positions are a function of time, so backlog and paced runs share one ground truth."""

    def __init__(self, cameras: list[str]):
        self.cameras = cameras
        self.offsets = {camera: 737 * i for i, camera in enumerate(cameras)}

    @staticmethod
    def vehicle(k: int) -> tuple[int, int, float]:
        """(lane number, class id, speed km/h) of vehicle k."""
        return k % 2 + 1, 7 if k % 5 == 4 else 2, SPEEDS_KMH[k % len(SPEEDS_KMH)]

    def start_ms(self, camera: str, k: int) -> int:
        return self.offsets[camera] + k * HEADWAY_MS

    def crossing_ms(self, camera: str, k: int) -> float:
        return self.start_ms(camera, k) + (FROM_Y_M - LINE_Y_M) / (self.vehicle(k)[2] / 3.6) * 1000

    def frame(self, camera: str, ts_ms: int) -> DetectionFrame:
        boxes = []
        newest = (ts_ms - self.offsets[camera]) // HEADWAY_MS
        for k in (newest - 1, newest):  # a drive lasts < 6 s: at most these two are on the road
            lane, class_id, speed_kmh = self.vehicle(k)
            y_m = FROM_Y_M - speed_kmh / 3.6 * (ts_ms - self.start_ms(camera, k)) / 1000
            if ts_ms >= self.start_ms(camera, k) and y_m > TO_Y_M:
                (x, y), = image([(sum(LANES_M[lane - 1]) / 2, y_m)])
                boxes.append((k, class_id, x, y))
        xyxy = np.asarray([(x - 20, y - 30, x + 20, y) for _, _, x, y in boxes], dtype=float).reshape(-1, 4)
        detections = Detections(xyxy, np.full(len(boxes), 0.9), [b[1] for b in boxes], [b[0] for b in boxes])
        return DetectionFrame(camera, ts_ms, 1280, 720, detections)

    def passages(self, since_ms: int, until_ms: int, seen_until_ms: int) -> dict[str, tuple[str, int, float, float]]:
        """passage_id → (camera, lane, speed, crossing ms) of every crossing in [since_ms, until_ms) that a frame
        shows: one at or before `seen_until_ms`, the last frame with traffic, comes after it."""
        truth = {}
        for camera in self.cameras:
            first, last = ((t - self.offsets[camera]) // HEADWAY_MS for t in (since_ms, until_ms))
            for k in range(first - 2, last + 1):
                crossing = self.crossing_ms(camera, k)
                if since_ms <= crossing < until_ms and crossing <= seen_until_ms:
                    lane, _, speed_kmh = self.vehicle(k)
                    truth[f"{camera}:line{lane}:{k}"] = (camera, lane, speed_kmh, crossing)
        return truth


def detection_batch(codec: AvroCodec, f: DetectionFrame) -> bytes:
    """As infer publishes it (jobs.anomaly.synthetic.as_detection_batch, with one codec: one per frame costs ~17 ms)."""
    frame_id = f"{f.camera_id}:{f.ts_ms}"
    ref = {"frame_id": frame_id, "camera_id": f.camera_id, "capture_ts_ms": f.ts_ms, "sequence": 0, "width": f.width,
           "height": f.height, "encoding": "jpeg", "uri": "file:///x", "ingest_ts_ms": f.ts_ms, "trace_context": {}}
    return codec.encode("DetectionBatch", {"batch_id": frame_id, "frame": ref, "model_name": "synthetic",
                                           "model_version": "1", **f.detections.to_record_fields(),
                                           "inference_ts_ms": f.ts_ms})


class Feed:
    """Produces one tick (a frame per camera) at a time and remembers when each tick was handed to the producer."""

    def __init__(self, settings, traffic: Traffic):
        self.producer, self.codec, self.traffic = make_producer(settings), AvroCodec(), traffic
        self.topic = DETECTIONS.deployed(settings)
        self.ticks: list[tuple[int, float]] = []  # (capture ms, wall ms produced)

    def encode(self, ts_ms: int, empty: bool = False) -> list[tuple[bytes, bytes]]:
        nothing = Detections(np.empty((0, 4)), [], [], [])
        frames = [DetectionFrame(c, ts_ms, 1280, 720, nothing) if empty else self.traffic.frame(c, ts_ms)
                  for c in self.traffic.cameras]
        return [(f.camera_id.encode(), detection_batch(self.codec, f)) for f in frames]

    def send(self, ts_ms: int, encoded: list[tuple[bytes, bytes]]) -> None:
        for key, value in encoded:
            self.producer.produce(self.topic, key=key, value=value, timestamp=ts_ms)
        self.producer.poll(0)
        self.ticks.append((ts_ms, time.time() * 1000))

    def wall_when_passed(self, ts_ms: float) -> float | None:
        """Wall time the first tick with capture time ≥ ts_ms was produced."""
        for tick_ms, wall_ms in self.ticks:
            if tick_ms >= ts_ms:
                return wall_ms
        return None


class RssSampler(threading.Thread):
    def __init__(self, procs: dict[str, subprocess.Popen]):
        super().__init__(daemon=True)
        self.procs, self.samples, self.stop = procs, {name: [] for name in procs}, threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            for name, proc in self.procs.items():
                if proc.poll() is None:
                    self.samples[name].append(tree_rss_mb(proc.pid))

    def summary(self) -> dict:
        return {name: {"max_mb": round(max(v), 1), "mean_mb": round(sum(v) / len(v), 1)}
                for name, v in self.samples.items() if v}


def count(client, sql: str, **parameters) -> int:
    return client.query(sql, parameters=parameters).result_rows[0][0]


def wait_until(done, timeout_s: float, what: str, procs: dict[str, subprocess.Popen], work: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {(work / f'{name}.log').read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not done after {timeout_s:.0f} s; see {work}/job.log")
        time.sleep(0.5)


def warmed_up(client, cameras: list[str], since_ms: int):
    """Every camera has a passage stored: the job and the sink are running and caught up."""
    sql = "SELECT uniqExact(camera_id) FROM vehicle_passages WHERE ts >= fromUnixTimestamp64Milli({s:Int64})"
    return lambda: count(client, sql, s=since_ms) == len(cameras)


def measured(client, since_ms: int, until_ms: int):
    """Bins [since, until) and passages in that span, after FINAL, with their emission and storage times."""
    p = {"s": since_ms, "u": until_ms}
    bins = client.query(
        "SELECT camera_id, lane, toUnixTimestamp64Milli(bin_start), toUnixTimestamp64Milli(bin_end), volume, frames, "
        "toUnixTimestamp64Milli(emitted_ts), toUnixTimestamp64Milli(stored_ts) FROM traffic_bins FINAL "
        "WHERE bin_start >= fromUnixTimestamp64Milli({s:Int64}) AND bin_start < fromUnixTimestamp64Milli({u:Int64})",
        parameters=p).result_rows
    passages = client.query(
        "SELECT passage_id, toUnixTimestamp64Milli(ts), speed_kmh, toUnixTimestamp64Milli(emitted_ts), "
        "toUnixTimestamp64Milli(stored_ts) FROM vehicle_passages FINAL "
        "WHERE ts >= fromUnixTimestamp64Milli({s:Int64}) AND ts < fromUnixTimestamp64Milli({u:Int64})",
        parameters=p).result_rows
    return bins, passages


def figures(feed: Feed, traffic: Traffic, bins, passages, since_ms: int, until_ms: int, seen_until_ms: int,
            frames: int, closes_after_ms: int) -> dict:
    """Delays, and the outcome against the ground truth (volumes per camera, lane and minute; passages; speeds)."""
    # a bin closes when event time passes its end + closes_after_ms (allowed lateness + out-of-orderness)
    close_wall = {end: feed.wall_when_passed(end + closes_after_ms + 1) for end in {b[3] for b in bins}}
    to_emit = [b[6] - close_wall[b[3]] for b in bins]
    to_row = [b[7] - close_wall[b[3]] for b in bins]
    passage_to_row = [row[4] - feed.wall_when_passed(row[1]) for row in passages]
    truth = traffic.passages(since_ms, until_ms, seen_until_ms)
    missing = set(truth) - {row[0] for row in passages}
    want_volumes = Counter((camera, f"lane{lane}", int(ts) // MINUTE_MS * MINUTE_MS)
                           for camera, lane, _, ts in truth.values())
    got_volumes = {(b[0], b[1], b[2]): b[4] for b in bins}
    speed_errors = [abs(row[2] - truth[row[0]][2]) for row in passages if row[0] in truth and row[2] is not None]
    return {
        "bins": len(bins),
        "bin_close_to_emitted_ms": percentiles(to_emit),
        "bin_close_to_row_ms": percentiles(to_row),
        "passages": len(passages),
        "passage_to_row_ms": percentiles(passage_to_row),
        "checks": {
            "bins_expected": len(traffic.cameras) * len(LANES_M) * (until_ms - since_ms) // MINUTE_MS,
            "frames_in_bins": sum(b[5] for b in bins) // len(LANES_M), "frames_produced": frames,
            "passages_expected": len(truth), "passages_missing": len(missing),
            "cameras_with_missing_passages": sorted({truth[p][0] for p in missing}),
            "passages_unexpected": len({row[0] for row in passages} - set(truth)),
            "volume_mismatches": sum(got_volumes.get(key, 0) != n for key, n in want_volumes.items())
                                 + sum(1 for key, n in got_volumes.items() if n and key not in want_volumes),
            "max_speed_error_kmh": round(max(speed_errors), 2) if speed_errors else None,
        },
    }


def backlog(settings, feed: Feed, traffic: Traffic, minutes: int, procs, work: Path, job_settings) -> dict:
    client = connect(settings)
    first_ms = (int(time.time() * 1000) // MINUTE_MS - minutes - 10) * MINUTE_MS  # measured capture starts here
    warm_ms = first_ms - 2 * MINUTE_MS
    for ts_ms in range(warm_ms, warm_ms + 12_000, FRAME_MS):
        feed.send(ts_ms, feed.encode(ts_ms))
    feed.producer.flush(30)
    wait_until(warmed_up(client, traffic.cameras, warm_ms), 240, "warm-up", procs, work)

    end_ms = first_ms + minutes * MINUTE_MS
    print(f"encoding {len(traffic.cameras)} cameras x {minutes} min ...", flush=True)
    ticks = [(ts_ms, feed.encode(ts_ms)) for ts_ms in range(first_ms, end_ms, FRAME_MS)]
    closing_ms = end_ms + job_settings.traffic_allowed_lateness_ms + 5_000
    ticks.append((closing_ms, feed.encode(closing_ms, empty=True)))
    feed.ticks.clear()
    begin = time.time() * 1000
    for ts_ms, encoded in ticks:
        feed.send(ts_ms, encoded)
    feed.producer.flush(60)
    produced_s = time.time() - begin / 1000
    frames = len(traffic.cameras) * (end_ms - first_ms) // FRAME_MS
    want = len(traffic.cameras) * len(LANES_M) * minutes
    bins_sql = "SELECT count() FROM traffic_bins FINAL WHERE bin_start >= fromUnixTimestamp64Milli({s:Int64})"
    wait_until(lambda: count(client, bins_sql, s=first_ms) >= want, 900, "all bins", procs, work)
    time.sleep(2)  # passages of the last frames, stored in the same sink batch or the next
    bins, passages = measured(client, first_ms, end_ms)
    last_out_ms = max(b[6] for b in bins)
    seconds = (last_out_ms - begin) / 1000
    return {"frames": frames, "produce_seconds": round(produced_s, 2),
            "throughput": {"seconds": round(seconds, 1), "records_per_s": round(frames / seconds, 1),
                           "definition": "frames / (first frame produced -> the job emits the last bin of the last "
                                         "minute); the job reads a backlog, the producer is far faster"},
            **figures(feed, traffic, bins, passages, first_ms, end_ms, end_ms - FRAME_MS, frames,
                      job_settings.traffic_out_of_orderness_ms + job_settings.traffic_allowed_lateness_ms)}


def paced(settings, feed: Feed, traffic: Traffic, minutes: int, procs, work: Path, job_settings) -> dict:
    client = connect(settings)
    started_ms = int(time.time() * 1000) // FRAME_MS * FRAME_MS
    warm = threading.Event()

    def watch():
        check = warmed_up(client, traffic.cameras, started_ms)
        while not warm.is_set():
            if check():
                warm.set()
            time.sleep(1)

    threading.Thread(target=watch, daemon=True).start()
    first_ms = end_ms = None
    tick_ms, late_ticks = started_ms, 0
    closes_after_ms = job_settings.traffic_out_of_orderness_ms + job_settings.traffic_allowed_lateness_ms
    while end_ms is None or tick_ms < end_ms + closes_after_ms + 3_000:
        wait_s = tick_ms / 1000 - time.time()
        if wait_s > 0:
            time.sleep(wait_s)
        elif wait_s < -FRAME_MS / 1000:
            late_ticks += 1
        feed.send(tick_ms, feed.encode(tick_ms))
        if first_ms is None and warm.is_set():  # measure whole minutes from the next boundary on
            first_ms = (tick_ms // MINUTE_MS + 1) * MINUTE_MS
            end_ms = first_ms + minutes * MINUTE_MS
            print(f"warm after {(tick_ms - started_ms) / 1000:.0f} s; measuring {minutes} min from the next minute",
                  flush=True)
        for proc_name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{proc_name} exited: {(work / f'{proc_name}.log').read_text()[-2000:]}")
        tick_ms += FRAME_MS
    feed.producer.flush(30)
    want = len(traffic.cameras) * len(LANES_M) * minutes
    bins_sql = ("SELECT count() FROM traffic_bins FINAL WHERE bin_start >= fromUnixTimestamp64Milli({s:Int64}) "
                "AND bin_start < fromUnixTimestamp64Milli({u:Int64})")
    wait_until(lambda: count(client, bins_sql, s=first_ms, u=end_ms) >= want, 60, "all bins", procs, work)
    time.sleep(2)
    bins, passages = measured(client, first_ms, end_ms)
    frames = len(traffic.cameras) * (end_ms - first_ms) // FRAME_MS
    return {"frames": frames, "frames_per_s_offered": len(traffic.cameras) * 1000 // FRAME_MS,
            "ticks_late": late_ticks, "bin_end_to_row_ms": percentiles([b[7] - b[3] for b in bins]),
            **figures(feed, traffic, bins, passages, first_ms, end_ms, feed.ticks[-1][0], frames, closes_after_ms)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--minutes", type=int, default=3, help="minutes of capture time measured")
    parser.add_argument("--paced", action="store_true", help="5 fps per camera in real time")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = private_settings()
    work = settings.data_dir
    manager.up(settings, only=["broker", "clickhouse", "flink"], log=lambda *_: None)
    cameras = [f"road-{i:02d}" for i in range(args.cameras)]
    (work / "cameras.yaml").write_text(yaml.safe_dump(
        {"cameras": [{"id": c, "url": f"rtsp://camera/{c}", "traffic": road()} for c in cameras]}))
    env = env_for(settings, sink_topics=json.dumps([TRAFFIC.name]))
    job_settings = TrafficJobSettings()
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *command: str) -> None:
        with open(work / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            procs[name] = subprocess.Popen([sys.executable, "-m", *command], env=env, cwd=REPO_ROOT,
                                           start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    start("sink", "services.sink")
    start("job", "jobs.traffic", "--cameras", str(work / "cameras.yaml"), "--checkpoint-dir", str(work / "checkpoints"))
    rss = RssSampler(procs)
    rss.start()
    traffic = Traffic(cameras)
    feed = Feed(settings, traffic)
    try:
        run = (paced if args.paced else backlog)(settings, feed, traffic, args.minutes, procs, work, job_settings)
    finally:
        rss.stop.set()
        stop_process_groups(procs)
        manager.down(settings)
    result = {"benchmark": "traffic_job", "mode": "paced" if args.paced else "backlog", "machine": machine(),
              "cameras": args.cameras, "minutes": args.minutes, "fps_per_camera": 1000 // FRAME_MS,
              "vehicles_per_camera_minute": MINUTE_MS // HEADWAY_MS,
              "settings": {"parallelism": settings.flink_parallelism, "bundle_time_ms": settings.flink_bundle_time_ms,
                           "bin_ms": job_settings.traffic_bin_ms,
                           "out_of_orderness_ms": job_settings.traffic_out_of_orderness_ms,
                           "allowed_lateness_ms": job_settings.traffic_allowed_lateness_ms,
                           "watermark_idleness_s": 5, "checkpoint_interval_ms": 2000,
                           "sink_max_wait_ms": SinkSettings().sink_max_wait_ms, "sink_topics": [TRAFFIC.name]},
              **run, "rss": rss.summary()}
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
