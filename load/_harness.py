"""Shared by the load scripts: a private embedded stack and the services as subprocesses, as `make demo` runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from vigil.config import REPO_ROOT, Settings
from app.stack import manager
from app.stack.process import free_port, tree_cpu_s, tree_rss_mb

VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
FOOTAGE = [VIDEOS / "car-detection.mp4", VIDEOS / "one-by-one-person-detection.mp4"]


def private_settings(root: Path | None = None, **overrides) -> Settings:
    root = root or Path(tempfile.mkdtemp(prefix="vigil-load-"))
    return Settings(data_dir=root, kafka_bootstrap=f"127.0.0.1:{free_port()}", triton_url=f"127.0.0.1:{free_port()}",
                    triton_http_port=free_port(), triton_metrics_port=free_port(),
                    clickhouse_dsn=f"http://127.0.0.1:{free_port()}/default", prometheus_port=free_port(), **overrides)


def env_for(settings: Settings, **extra) -> dict:
    values = {"data_dir": settings.data_dir, "kafka_bootstrap": settings.kafka_bootstrap, "triton_url": settings.triton_url,
              "clickhouse_dsn": settings.clickhouse_dsn, "topic_namespace": settings.topic_namespace,
              "flink_lib_dir": settings.flink_lib_dir, **extra}
    return {**os.environ, **{f"VIGIL_{k.upper()}": str(v) for k, v in values.items()}}


@contextmanager
def stack(settings: Settings):
    manager.up(settings, log=lambda *_: None)
    try:
        yield
    finally:
        manager.down(settings)


class Services:
    """ingest / infer / sink subprocesses with stats files, RSS and CPU-time sampling."""

    def __init__(self, settings: Settings, env: dict):
        self.settings, self.env = settings, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.stats = {}
        self.rss: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}  # name → [first, last] CPU seconds sampled

    def start(self, name: str, *args: str, key: str | None = None) -> None:
        """Start `services.<name>`; `key` names a second instance of one service (e.g. a second ingest)."""
        key = key or name
        stats = self.settings.data_dir / f"{key}-stats.json"
        self.stats[key] = stats
        log = open(self.settings.data_dir / f"{key}.log", "ab")
        self.procs[key] = subprocess.Popen([sys.executable, "-m", f"services.{name}", *args, "--stats-file", str(stats)],
                                            env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def read(self, name: str) -> dict:
        try:
            return json.loads(self.stats[name].read_text())
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def sample_rss(self) -> None:
        """Sample the memory and the CPU time of every service and stack part (call it every second or so)."""
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.rss.setdefault(name, []).append(tree_rss_mb(proc.pid))
                self._cpu(name, tree_cpu_s(proc.pid))
        for part in manager.components(self.settings):
            value = part.process.rss_mb()
            if value:
                self.rss.setdefault(part.name, []).append(value)
                self._cpu(part.name, part.process.cpu_s())

    def _cpu(self, name: str, seconds: float | None) -> None:
        if seconds is not None:
            seen = self.cpu.setdefault(name, [seconds, seconds])
            seen[1] = max(seen[1], seconds)

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stop_all(self) -> None:
        for name in ["ingest", *(k for k in self.procs if k not in ("ingest", "infer", "reid", "sink")), "infer", "reid",
                     "sink"]:
            self.stop(name)

    def rss_summary(self) -> dict:
        return {name: {"max_mb": round(max(v), 1), "mean_mb": round(sum(v) / len(v), 1)} for name, v in self.rss.items() if v}

    def cpu_summary(self) -> dict:
        """CPU seconds each service and stack part used between its first and last sample, busiest first."""
        used = {name: round(last - first, 1) for name, (first, last) in self.cpu.items()}
        return dict(sorted(used.items(), key=lambda item: -item[1]))


def percentiles(values, qs=(50, 95, 99)) -> dict:
    import numpy as np

    if not len(values):
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in qs}


def machine() -> dict:
    import platform

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def stop_process_groups(procs: dict) -> None:
    """SIGTERM every child started with start_new_session, then SIGKILL what has not exited within 30 s."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run_job_pipeline(settings: Settings, camera_file: dict, work: Path, job_module: str, record_type: str,
                     extra_env: dict | None = None, settle_s: float = 12.0, job_warmup_s: float = 25.0,
                     until=None, topic=None) -> dict:
    """Stream cameras through sink, infer, the re-ID embed service, a PyFlink job and ingest (subprocesses) on a running stack, collecting
    `record_type` records from the job's output topic (default events.v1) as they arrive.

    Returns {"events": [(received_wall_ms, record)], "first_capture_ms": {camera: ms}}. Stops once ingest has ended,
    inference has caught up and `settle_s` passed (or `until(events)` holds after inference caught up)."""
    import uuid

    import yaml

    from vigil.avro_codec import AvroCodec
    from vigil.kafka_io import make_consumer
    from vigil.store.client import connect

    work.mkdir(parents=True, exist_ok=True)
    # a camera's "detector" (e.g. the car camera's fine-tune for clips cut from its footage) goes to infer
    detectors = {c["id"]: c["detector"] for c in camera_file["cameras"] if c.get("detector")}
    camera_file = {**camera_file, "cameras": [{k: v for k, v in c.items() if k != "detector"} for c in camera_file["cameras"]]}
    (work / "cameras.yaml").write_text(yaml.safe_dump(camera_file))
    env = env_for(settings, max_lag_ms=0, **(extra_env or {}))
    if detectors:
        env["VIGIL_DETECTOR_MODELS"] = json.dumps(detectors)
    procs = {}

    def start(name, module, *args):
        procs[name] = subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=REPO_ROOT, start_new_session=True,
                                       stdout=open(work / f"{name}.log", "wb"), stderr=subprocess.STDOUT)

    codec, received = AvroCodec(), []

    def poll(timeout):
        message = consumer.poll(timeout)
        if message is not None and not message.error():
            try:
                if codec.record_type(message.value()) == record_type:
                    received.append((time.time_ns() // 1_000_000, codec.decode(message.value(), expected=record_type)))
            except Exception:  # noqa: BLE001 - other producers' records are not ours to judge here
                pass

    from vigil.topics import EVENTS

    consumer = make_consumer(settings, f"eval-{uuid.uuid4().hex[:6]}", [(topic or EVENTS).deployed(settings)])
    try:
        start("sink", "services.sink")
        start("infer", "services.infer", "--stats-file", str(work / "infer.json"))
        start("reid", "services.reid", "--stats-file", str(work / "reid.json"))  # track summaries on tracks.v1
        start("job", job_module, "--cameras", str(work / "cameras.yaml"), "--checkpoint-dir", str(work / "checkpoints"))
        # The job reads from the earliest offsets, so nothing is missed if it starts late; the pause only keeps its
        # MiniCluster start-up (~15-25 s here) out of the latency figures.
        end = time.monotonic() + job_warmup_s
        while time.monotonic() < end and procs["job"].poll() is None:
            poll(0.5)
        start("ingest", "services.ingest", "--cameras", str(work / "cameras.yaml"), "--stats-file", str(work / "ingest.json"))
        while procs["ingest"].poll() is None:
            poll(0.5)
        published = sum(c["frames_published"] for c in json.loads((work / "ingest.json").read_text()).values())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # inference has caught up, and so has the re-ID embed service behind it
            poll(0.5)
            try:
                detected = json.loads((work / "infer.json").read_text())["processed"]
                embedded = json.loads((work / "reid.json").read_text())
                if detected >= published and embedded["frames"] + embedded["dead_letters"] >= detected:
                    break
            except (FileNotFoundError, ValueError, KeyError):
                pass
        end = time.monotonic() + settle_s
        while time.monotonic() < end and not (until and until([r for _, r in received])):
            poll(0.5)
    finally:
        consumer.close()
        stop_process_groups(procs)
    first = dict(connect(settings).query(
        "SELECT camera_id, toUnixTimestamp64Milli(min(capture_ts)) FROM frames FINAL WHERE camera_id IN {c:Array(String)} "
        "GROUP BY camera_id", parameters={"c": [c["id"] for c in camera_file["cameras"]]}).result_rows)
    return {"events": received, "first_capture_ms": first}
