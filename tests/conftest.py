"""Shared fixtures: a Settings object on free 127.0.0.1 ports and a private data directory, and the embedded stack
(real Tansu, chDB store and tritonserver) started once per test session and stopped after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.config import Settings
from vigil.stack import manager
from vigil.stack.process import free_port

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CAR_VIDEO = VIDEOS / "car-detection.mp4"
PERSON_VIDEO = VIDEOS / "one-by-one-person-detection.mp4"


def make_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        triton_url=f"127.0.0.1:{free_port()}",
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        clickhouse_dsn=f"http://127.0.0.1:{free_port()}/default",
        **overrides,
    )


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("vigil"))


@pytest.fixture(scope="session")
def stack(settings):
    """The whole embedded stack, as `vigil stack up` starts it."""
    manager.up(settings, log=lambda *_: None)
    yield settings
    manager.down(settings)


@pytest.fixture(scope="session", autouse=True)
def _quiet_threads():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield
