"""`vigil stack up | status | down` on a private set of ports: start, idempotent second start, health, clean stop
and the error paths (port taken, missing install step, failing component)."""

import socket
import subprocess
import sys

import pytest

from app.stack import manager
from app.stack.components import Flink, Triton
from app.stack.process import StackError
from tests.conftest import make_settings

pytestmark = pytest.mark.slow  # starts real servers or Flink


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_up_status_down_through_the_cli(tmp_path):
    settings = make_settings(tmp_path)
    env = {"VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "VIGIL_TRITON_URL": settings.triton_url, "VIGIL_TRITON_HTTP_PORT": str(settings.triton_http_port),
           "VIGIL_TRITON_METRICS_PORT": str(settings.triton_metrics_port), "VIGIL_CLICKHOUSE_DSN": settings.clickhouse_dsn,
           "VIGIL_PROMETHEUS_PORT": str(settings.prometheus_port), "PATH": "/usr/bin:/bin"}
    vigil = [sys.executable, "-m", "app.cli", "stack"]
    try:
        up = subprocess.run(vigil + ["up"], env=env, capture_output=True, text=True, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {name: manager.components(settings)[i].process.pid() for i, name in enumerate(["broker", "clickhouse", "triton", "prometheus"])}
        assert all(pids.values()), pids

        again = subprocess.run(vigil + ["up"], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout.count("already running") == 4, again.stdout
        assert {name: manager.components(settings)[i].process.pid() for i, name in enumerate(pids)} == pids

        status = subprocess.run(vigil + ["status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout
    finally:
        down = subprocess.run(vigil + ["down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0 and down.stdout.count("stopped") == 4, down.stdout
    assert not any(_alive(pid) for pid in pids.values())
    after = subprocess.run(vigil + ["status"], env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 1 and after.stdout.count("not running") == 4


def test_port_taken_names_the_port_and_the_setting(tmp_path):
    settings = make_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka_host_port[1]))
        squatter.listen()
        with pytest.raises(StackError, match=rf"port {settings.kafka_host_port[1]}.*VIGIL_KAFKA_BOOTSTRAP"):
            manager.up(settings, only=["broker"], log=lambda *_: None)


def test_missing_connector_jars_point_at_the_install_step(tmp_path):
    health = Flink(make_settings(tmp_path, flink_lib_dir=tmp_path / "empty")).health()
    assert not health.ok and "make setup" in health.detail


def test_missing_model_repository_is_reported(tmp_path):
    with pytest.raises(StackError, match="model repository .* does not exist"):
        Triton(make_settings(tmp_path, model_repository=tmp_path / "nowhere")).preflight()


def test_model_that_fails_to_load_fails_up_and_leaves_nothing_running(tmp_path):
    settings = make_settings(tmp_path, triton_models=["no_such_model"], triton_ready_timeout_s=20)
    with pytest.raises(StackError, match="no_such_model"):
        manager.up(settings, only=["triton"], log=lambda *_: None)
    assert not Triton(settings).process.running()
