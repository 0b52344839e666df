"""Shared by the load scripts: a private embedded stack and the services as subprocesses, as `make demo` runs them."""

from __future__ import annotations

import importlib.util
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
from vigil.stack import manager
from vigil.stack.process import free_port, tree_rss_mb

VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
FOOTAGE = [VIDEOS / "car-detection.mp4", VIDEOS / "one-by-one-person-detection.mp4"]


def private_settings(root: Path | None = None, **overrides) -> Settings:
    root = root or Path(tempfile.mkdtemp(prefix="vigil-load-"))
    return Settings(data_dir=root, kafka_bootstrap=f"127.0.0.1:{free_port()}", triton_url=f"127.0.0.1:{free_port()}",
                    triton_http_port=free_port(), triton_metrics_port=free_port(),
                    clickhouse_dsn=f"http://127.0.0.1:{free_port()}/default", **overrides)


def env_for(settings: Settings, **extra) -> dict:
    values = {"data_dir": settings.data_dir, "kafka_bootstrap": settings.kafka_bootstrap, "triton_url": settings.triton_url,
              "clickhouse_dsn": settings.clickhouse_dsn, "topic_namespace": settings.topic_namespace, **extra}
    return {**os.environ, **{f"VIGIL_{k.upper()}": str(v) for k, v in values.items()}}


@contextmanager
def stack(settings: Settings):
    manager.up(settings, log=lambda *_: None)
    try:
        yield
    finally:
        manager.down(settings)


class Services:
    """ingest / infer / sink subprocesses with stats files and RSS sampling."""

    def __init__(self, settings: Settings, env: dict):
        self.settings, self.env = settings, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.stats = {}
        self.rss: dict[str, list[float]] = {}

    def start(self, name: str, *args: str) -> None:
        stats = self.settings.data_dir / f"{name}-stats.json"
        self.stats[name] = stats
        log = open(self.settings.data_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}", *args, "--stats-file", str(stats)],
                                            env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def read(self, name: str) -> dict:
        try:
            return json.loads(self.stats[name].read_text())
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def sample_rss(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.rss.setdefault(name, []).append(tree_rss_mb(proc.pid))
        for part in manager.components(self.settings):
            value = part.process.rss_mb()
            if value:
                self.rss.setdefault(part.name, []).append(value)

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stop_all(self) -> None:
        for name in ("ingest", "infer", "sink"):
            self.stop(name)

    def rss_summary(self) -> dict:
        return {name: {"max_mb": round(max(v), 1), "mean_mb": round(sum(v) / len(v), 1)} for name, v in self.rss.items() if v}


def load_model_module(name: str):
    """Import a Triton model's model.py directly (for in-process baselines and evaluation)."""
    path = REPO_ROOT / "models" / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"vigil_model_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_parameters(name: str) -> dict:
    """The `parameters` of a model's config.pbtxt, as the Triton model sees them."""
    import re

    text = (REPO_ROOT / "models" / name / "config.pbtxt").read_text()
    return dict(re.findall(r'key:\s*"(\w+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))


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
