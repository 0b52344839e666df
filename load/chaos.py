"""The fault suite: stream the car footage through the whole real-time path on a private embedded stack with the
durable broker (VIGIL_KAFKA_STORAGE=s3), SIGKILL one component mid-stream, restart it, and compare what ClickHouse
holds with an uninterrupted run of the same input.

The load script streams the stopped-vehicle clip (app/scenarios.py: the car footage with a car held still for 10 s
from 16 s on, in two traffic lanes) through the services and both per-frame PyFlink jobs (the anomaly job with its
incident stage, and the traffic job), so the kill of either job is judged on real output: the stopped-vehicle
events and incident, traffic bins and vehicle passages. A killed job is restarted with `--restore latest` (its last
completed checkpoint, every 2 s).

    .venv/bin/python load/chaos.py --out load/results/chaos.json                   # baseline + every component
    .venv/bin/python load/chaos.py --out /tmp/chaos.json --components infer sink   # some of them

Components: the stack's broker (Tansu on SeaweedFS), its store (chDB server) and Triton; the services ingest, infer,
reid (the embed service), sink and evidence (subprocesses, as `make demo` runs them); the anomaly and traffic jobs. Per
component it reports:
- lost: frames, detection rows and track summaries the baseline stored and this run did not, and frames published on
  frames.v1 (read back from the topic by this script) without a detection row;
- duplicated: rows that stay doubled after FINAL (the same frame stored twice under another key);
- lost / duplicated for the jobs' outputs too: anomaly events, incidents (and their snapshot and clip from the
  evidence service), vehicle passages, and what the traffic bins
  counted (their volumes and frames summed: minute boundaries fall differently in each run);
- recovery_s: from the kill until a detection row newer than the kill is stored again (a job: until the restored job
  completed its first checkpoint).
A file camera restarted by a killed ingest starts its file again (a new capture clock): those frames are a second
capture, not duplicates, so for ingest only the published-vs-stored check applies, and the frames of the outage
count as not captured (what a live camera loses while ingest is down). The re-ID job's kill-and-restore run is its
own test (tests/reid/test_job_kafka.py: it needs a multi-camera site); the reduced suite in `make test` runs without
the jobs (tests/chaos/test_faults.py; the jobs' own kill tests are tests/traffic/test_job_kafka.py and
tests/anomaly/test_job_kafka.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._harness import machine, private_settings  # noqa: E402
from load._results import save  # noqa: E402
from vigil.config import REPO_ROOT, Settings  # noqa: E402

CAR_VIDEO = REPO_ROOT.parent / "shared" / "data" / "videos" / "car-detection.mp4"
STACK_PARTS = ("broker", "clickhouse", "triton")
SERVICES = ("ingest", "infer", "reid", "sink", "evidence")
JOBS = {"anomaly_job": "jobs.anomaly", "traffic_job": "jobs.traffic"}
COMPONENTS = STACK_PARTS + SERVICES + tuple(JOBS)


class Pipeline:
    """A private stack plus the four services as subprocesses, with SIGKILL and restart of any part."""

    def __init__(self, work: Path, models: list[str] | None = None, detector: str | None = None, fps: float = 5.0,
                 video: Path = CAR_VIDEO, jobs: bool = False):
        import yaml

        self.work, self.jobs = work, jobs
        shutil.rmtree(work, ignore_errors=True)  # no stack, checkpoint or log of an earlier run
        work.mkdir(parents=True, exist_ok=True)
        overrides = {"kafka_storage": "s3", "kafka_s3_port": _free_port()}
        if models:
            overrides["triton_models"] = models
        self.settings: Settings = private_settings(work / "stack", **overrides)
        self.camera_id = f"chaos-{uuid.uuid4().hex[:6]}"
        camera = {"id": self.camera_id, "url": str(video), "fps": fps, "pace": "native", "clock": "video"}
        if jobs:  # the car camera's lanes: the anomaly and traffic jobs' rules and counts
            from app.scenarios import CAR_TRAFFIC, CAR_ZONES

            camera |= {"zones": CAR_ZONES, "traffic": CAR_TRAFFIC}
        (work / "cameras.yaml").write_text(yaml.safe_dump({"cameras": [camera]}))
        extra = {"max_lag_ms": 0, "status_interval_s": 1.0, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0,
                 "kafka_storage": "s3", "kafka_s3_port": overrides["kafka_s3_port"]}
        if detector:
            extra["detector_model"] = detector
        if models and "reid_learned" not in models:
            extra["reid_model"] = models[-1] if models[-1].startswith("reid_") else ""
        from load._harness import env_for

        self.env = env_for(self.settings, **extra)
        self.env["VIGIL_DETECTOR_MODELS"] = json.dumps({self.camera_id: detector or "yolox_nano__car-park"})
        if models:
            self.env["VIGIL_TRITON_MODELS"] = json.dumps(models)
        self.procs: dict[str, subprocess.Popen] = {}
        self.published: set[str] = set()
        self.newest_published_ms = 0  # capture time of the newest frame seen on frames.v1
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    # --- the parts ----------------------------------------------------------------------------------------------
    def up(self) -> None:
        from app.stack import manager

        began = time.time()
        manager.up(self.settings, log=lambda *_: None)
        self._reader = threading.Thread(target=self._read_frames, daemon=True)
        self._reader.start()
        for name in ("sink", "infer", "reid", *(("evidence", *JOBS) if self.jobs else ())):
            self.start(name)
        if self.jobs:  # their MiniClusters up and reading before the stream starts
            if not self.wait_checkpoint(began, timeout_s=180):
                raise RuntimeError(f"the jobs did not start checkpointing; see {self.work}/*_job.log")

    def start(self, name: str, restore: bool = False) -> None:
        cameras = ["--cameras", str(self.work / "cameras.yaml")]
        if name in JOBS:
            command = ["-m", JOBS[name], *cameras, "--checkpoint-dir", str(self.work / f"checkpoints-{name}"),
                       "--restore", "latest" if restore else "none"]
        else:
            command = ["-m", f"services.{name}", *(cameras if name == "ingest" else [])]
        log = open(self.work / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, *command], env=self.env,
                                            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_checkpoint(self, after_wall: float, timeout_s: float = 180, names=None) -> bool:
        """Until every job (or `names`) completed a checkpoint after `after_wall` (time.time())."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(any(p.stat().st_mtime > after_wall for p in (self.work / f"checkpoints-{name}").glob("*/chk-*/_metadata"))
                   for name in (names or JOBS)):
                return True
            time.sleep(0.5)
        return False

    def part(self, name: str):
        from app.stack import manager

        return next(p for p in manager.components(self.settings) if p.name == name)

    def kill(self, name: str) -> None:
        if name in self.procs:
            os.killpg(self.procs[name].pid, signal.SIGKILL)
            self.procs[name].wait(30)
            return
        part = self.part(name)
        os.kill(part.process.pid(), signal.SIGKILL)
        deadline = time.monotonic() + 15
        while part.process.running() and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self, name: str) -> None:
        if name in SERVICES or name in JOBS:
            self.start(name, restore=name in JOBS)
            return
        part = self.part(name)
        part.start()
        part.wait_ready(self.settings.triton_ready_timeout_s if name == "triton" else 60)

    def down(self) -> None:
        from app.stack import manager

        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self._reader:
            self._reader.join(10)
        manager.down(self.settings)

    # --- what happened ------------------------------------------------------------------------------------------
    def _read_frames(self) -> None:
        """Every frame id published on frames.v1, read back by this script's own group (through broker restarts)."""
        from vigil.avro_codec import AvroCodec
        from vigil.kafka_io import make_consumer
        from vigil.topics import FRAMES

        codec = AvroCodec()
        consumer = make_consumer(self.settings, f"chaos-{uuid.uuid4().hex[:6]}", [FRAMES.deployed(self.settings)],
                                 log_level=0)  # quiet while the broker is the part that was killed
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                try:
                    record = codec.decode(message.value(), expected="FrameRef")
                except Exception:  # noqa: BLE001 - not a frame: the services' dead letters judge it
                    continue
                if record["camera_id"] == self.camera_id:
                    self.published.add(record["frame_id"])
                    ts = record["capture_ts_ms"]
                    ts = int(ts.timestamp() * 1000) if hasattr(ts, "timestamp") else int(ts)
                    self.newest_published_ms = max(self.newest_published_ms, ts)
        finally:
            consumer.close()

    def query(self, sql: str) -> int:
        from vigil.store.client import connect

        for _ in range(60):  # the store may be the part that was killed
            try:
                client = connect(self.settings)
                value = client.query(sql, parameters={"c": self.camera_id}).result_rows[0][0]
                client.close()
                return int(value)
            except Exception:  # noqa: BLE001
                time.sleep(1)
        raise RuntimeError(f"the store at {self.settings.clickhouse_dsn} did not answer: {sql}")

    def counts(self) -> dict:
        c = "camera_id = {c:String}"
        jobs = {} if not self.jobs else {
            "anomalies": self.query(f"SELECT count() FROM anomalies FINAL WHERE {c}"),
            "anomalies_doubled": self.query(f"SELECT count() - uniqExact(event_id) FROM anomalies FINAL WHERE {c}"),
            "incidents": self.query(f"SELECT uniqExact(incident_id) FROM incidents FINAL WHERE {c}"),
            "incident_revisions": self.query(f"SELECT count() FROM incidents FINAL WHERE {c}"),
            # per lane and minute, but minute boundaries fall differently in each run: what the bins counted
            "traffic_volume": self.query(f"SELECT sum(volume) FROM traffic_bins FINAL WHERE {c}"),
            "traffic_bin_frames": self.query(f"SELECT sum(frames) FROM traffic_bins FINAL WHERE {c}"),
            "bins_doubled": self.query(f"SELECT count() - uniqExact(bin_id) FROM traffic_bins FINAL WHERE {c}"),
            "passages": self.query(f"SELECT count() FROM vehicle_passages FINAL WHERE {c}"),
            "passages_doubled": self.query(f"SELECT count() - uniqExact(passage_id) FROM vehicle_passages FINAL WHERE {c}"),
        }
        if self.jobs:  # every incident's snapshot and clip in the frame store (the evidence service)
            from vigil.framestore import open_frame_store
            from vigil.store.client import connect

            store = open_frame_store(self.settings.frame_store_uri)
            rows = connect(self.settings).query(
                "SELECT snapshot_uri, clip_uri FROM incidents FINAL WHERE camera_id = {c:String} AND revision = 1",
                parameters={"c": self.camera_id}).result_rows
            jobs["evidence"] = sum(1 for snapshot, clip in rows if store.exists(snapshot) and store.exists(clip))
        return jobs | {
            "frames": self.query(f"SELECT count() FROM frames FINAL WHERE {c}"),
            "detections": self.query(f"SELECT count() FROM detections FINAL WHERE {c}"),
            "detection_frames": self.query(f"SELECT uniqExact(frame_id) FROM detections FINAL WHERE {c}"),
            "frames_doubled": self.query(f"SELECT count() - uniqExact(frame_id) FROM frames FINAL WHERE {c}"),
            "track_summaries": self.query(f"SELECT count() FROM track_summaries FINAL WHERE {c} AND final"),
            "summaries_doubled": self.query(
                f"SELECT count() - uniqExact(camera_id, track_id) FROM track_summaries FINAL WHERE {c} AND final"),
        }

    def published_without_detections(self) -> int:
        from vigil.store.client import connect

        stored = {row[0] for row in connect(self.settings).query(
            "SELECT DISTINCT frame_id FROM detections FINAL WHERE camera_id = {c:String}",
            parameters={"c": self.camera_id}).result_rows}
        return len(self.published - stored)

    def ingest_done(self) -> bool:
        proc = self.procs.get("ingest")
        return proc is not None and proc.poll() is not None

    def settle(self, quiet_s: float = 10.0, timeout_s: float = 240.0) -> None:
        """Until every published frame has its detection row and nothing new arrived for quiet_s."""
        deadline, last, last_change = time.monotonic() + timeout_s, None, time.monotonic()
        while time.monotonic() < deadline:
            now = (self.query("SELECT count() FROM detections WHERE camera_id = {c:String}"),
                   self.query("SELECT count() FROM track_summaries WHERE camera_id = {c:String}"), len(self.published),
                   *((self.query("SELECT count() FROM traffic_bins WHERE camera_id = {c:String}"),
                      self.query("SELECT count() FROM incidents WHERE camera_id = {c:String}")) if self.jobs else ()))
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s and self.published_without_detections() == 0:
                return
            time.sleep(1)


def run(work: Path, faults: list[tuple[float, str]], models=None, detector=None, fps: float = 5.0, log=print,
        video: Path = CAR_VIDEO, jobs: bool = False) -> dict:
    """One stream with `faults` ((seconds after ingest started, component), ...): SIGKILL, then restart each."""
    pipeline = Pipeline(work, models, detector, fps, video=video, jobs=jobs)
    recoveries = {}
    try:
        pipeline.up()
        started = time.monotonic()
        pipeline.start("ingest")
        for at_s, name in faults:
            while time.monotonic() - started < at_s:
                time.sleep(0.2)
            before = pipeline.newest_published_ms  # recovered: a frame captured after this has its detection row
            killed = time.monotonic()
            killed_wall = time.time()
            pipeline.kill(name)
            log(f"killed {name} at {killed - started:.1f} s")
            time.sleep(1.0)
            pipeline.restart(name)
            if name in JOBS:  # running again: the restored job completed a checkpoint
                if not pipeline.wait_checkpoint(killed_wall, names=[name]):
                    raise RuntimeError(f"{name} did not checkpoint again after its restore; see {work / (name + '.log')}")
                recoveries[name] = round(time.monotonic() - killed, 1)
                log(f"{name} back: checkpointing again {recoveries[name]} s after the kill")
                continue
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:  # the path moves again: a row stored after the kill
                if pipeline.query("SELECT count() FROM detections WHERE camera_id = {c:String} "
                                  f"AND toUnixTimestamp64Milli(capture_ts) > {int(before)}") > 0:
                    break
                time.sleep(0.5)
            recoveries[name] = round(time.monotonic() - killed, 1)
            log(f"{name} back: detections flowing again {recoveries[name]} s after the kill")
        while not pipeline.ingest_done():
            time.sleep(0.5)
        pipeline.settle(quiet_s=25.0 if jobs else 10.0)  # traffic bins close 10 s after the camera's last frame
        result = pipeline.counts() | {"published": len(pipeline.published),
                                      "published_without_detections": pipeline.published_without_detections(),
                                      "recovery_s": recoveries}
    finally:
        pipeline.down()
    return result


JOB_OUTPUTS = {"anomalies": "anomalies_doubled", "incidents": None, "evidence": None, "traffic_volume": "bins_doubled",
               "traffic_bin_frames": None, "passages": "passages_doubled"}


def compare(name: str, baseline: dict, faulted: dict) -> dict:
    replayable = name != "ingest"
    lost = {"published_without_detections": faulted["published_without_detections"]}
    if replayable:
        lost |= {k: max(0, baseline[k] - faulted[k]) for k in ("frames", "detections", *JOB_OUTPUTS) if k in baseline}
    duplicated = {"frames": faulted["frames_doubled"], "detections": faulted["detections"] - faulted["detection_frames"],
                  "track_summaries": faulted["summaries_doubled"]}
    duplicated |= {k.replace("traffic_volume", "traffic_bins"): faulted[d] for k, d in JOB_OUTPUTS.items()
                   if d and d in faulted}
    if "incidents" in baseline:  # a replay re-emits no revision: one row per (incident, revision) after FINAL
        duplicated["incident_revisions"] = max(0, faulted["incident_revisions"] - baseline["incident_revisions"])
    return {"lost": lost, "duplicated": duplicated,
            "track_summaries": {"baseline": baseline["track_summaries"], "run": faulted["track_summaries"]},
            "recovery_s": faulted["recovery_s"].get(name), "counts": faulted}


def _free_port() -> int:
    from app.stack.process import free_port

    return free_port()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--components", nargs="*", choices=COMPONENTS, default=list(COMPONENTS))
    parser.add_argument("--kill-at", type=float, default=10.0, help="seconds after ingest starts (the clip is 40 s)")
    args = parser.parse_args()
    root = REPO_ROOT / ".vigil" / "chaos"
    started = time.monotonic()
    from app.scenarios import build

    video = next(s for s in build(root / "clips") if s.name == "stopped").path
    baseline = run(root / "baseline", [], video=video, jobs=True)
    print("baseline", json.dumps(baseline), flush=True)
    results = {}
    for name in args.components:
        faulted = run(root / name, [(args.kill_at, name)], video=video, jobs=True)
        results[name] = compare(name, baseline, faulted)
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "counts"}), flush=True)
    save(args.out, {"suite": "chaos", "machine": machine(), "input": {"video": f"{CAR_VIDEO.name}, stopped-vehicle cut "
                                                                               "(app/scenarios.py)", "fps": 5.0,
                                                                      "pace": "native", "kill_at_s": args.kill_at,
                                                                      "jobs": sorted(JOBS)},
                    "broker_storage": "s3", "baseline": baseline, "components": results,
                    "run_s": round(time.monotonic() - started, 1)},
         shown={name: {k: r[k] for k in ("lost", "duplicated", "recovery_s")} for name, r in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
