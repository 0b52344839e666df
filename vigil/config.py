"""One typed settings object for the whole platform. Every value is overridable by a `VIGIL_*` environment variable.

Defaults run the embedded stack on 127.0.0.1. Pointing Vigil at production parts is configuration only:
`VIGIL_KAFKA_EMBEDDED=false VIGIL_KAFKA_BOOTSTRAP=broker:9092`, `VIGIL_TRITON_EMBEDDED=false
VIGIL_TRITON_URL=triton:8001`, `VIGIL_CLICKHOUSE_EMBEDDED=false VIGIL_CLICKHOUSE_DSN=https://user:pw@ch:8443/vigil`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(REPO_ROOT / ".vigil", description="Root of embedded state: logs, pid files, chDB store, frame store.")

    # Kafka
    kafka_embedded: bool = Field(True, description="Start the Tansu broker with `vigil stack up`; false = use kafka_bootstrap as is.")
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="bootstrap.servers of the broker.")
    kafka_storage: Literal["memory", "s3"] = Field(
        "memory", description="Where the embedded broker keeps its log: memory (fast; a broker crash or restart loses "
        "every message and committed offset) or s3 (durable: Tansu on a local SeaweedFS S3 server under "
        "<data_dir>/broker-store; acknowledged messages and committed offsets survive a SIGKILL).")
    kafka_s3_port: int = Field(19333, description="S3 port of the embedded broker's SeaweedFS (kafka_storage=s3); its "
                               "other ports are picked free at start.")
    kafka_config: dict[str, str] = Field(default_factory=dict, description="Extra librdkafka settings, JSON (SASL and "
                                         "TLS have the kafka_security_* settings below, which also reach Flink).")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="security.protocol of every Kafka client (services and Flink jobs); SASL_SSL in production.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism, with the SASL_* protocols.")
    kafka_sasl_username: str = Field("", description="SASL user name, with the SASL_* protocols.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password: a secret, never logged.")
    kafka_ssl_ca_file: Path | None = Field(None, description="PEM CA bundle the broker certificates are checked "
                                           "against (SSL, SASL_SSL); empty = the system's CAs.")
    kafka_session_timeout_ms: int = Field(6000, description="Consumer session timeout; keep low on Tansu (first join waits half of it).")
    kafka_topics: dict[str, int] = Field(default_factory=dict, description="Partition counts per topic, overriding the defaults of the topic registry (vigil/topics.py), JSON.")
    kafka_replication_factor: int = 1
    topic_namespace: str = Field("", description="Prefix for every topic name (e.g. 'site-a.'), to share one cluster.")
    schema_registry_url: str | None = Field(None, description="Confluent Schema Registry; unset = Avro single-object encoding.")

    # Triton
    triton_embedded: bool = Field(True, description="Start tritonserver with `vigil stack up`; false = use triton_url as is.")
    triton_url: str = Field("127.0.0.1:18001", description="Triton gRPC endpoint host:port.")
    triton_http_port: int = 18000
    triton_metrics_port: int = 18002
    model_repository: Path = Field(REPO_ROOT / "models", description="Triton model repository served by the embedded server.")
    triton_models: list[str] = Field(default_factory=lambda: ["yolox_nano", "motion_detector", "reid_color", "reid_learned",
                                                                   "reid_pretrained"],
                                     description="Models loaded at start-up (with the per-camera fine-tunes "
                                     "<model>__<name> of these found in the repository).")
    triton_ready_timeout_s: float = 90.0

    # ClickHouse
    clickhouse_embedded: bool = Field(True, description="Serve the chDB store over ClickHouse HTTP with `vigil stack up`.")
    clickhouse_dsn: str = Field("http://127.0.0.1:18123/default", description="clickhouse-connect DSN all services use.")
    clickhouse_ttl_days: int = Field(30, description="Retention of result tables.")
    clickhouse_analyst_dsn: SecretStr | None = Field(None, description="DSN of a read-only ClickHouse user for the "
                                                     "analyst paths (`vigil sql`, the re-ID API, the console's "
                                                     "reads); empty = clickhouse_dsn. They send readonly=1 either way.")

    # Flink
    flink_lib_dir: Path = Field(REPO_ROOT / ".deps" / "flink", description="Folder holding the Kafka connector jars.")
    flink_parallelism: int = 1
    flink_bundle_time_ms: int = Field(100, ge=1, description="Python bundle time: lower = lower latency.")
    flink_metrics_port: int = Field(0, ge=0, le=65535, description="Flink's Prometheus reporter port for a job's local "
                                    "MiniCluster (0 = off; it listens on every interface, so the embedded stack leaves it off).")

    # Frame store (written by ingest, read by inference)
    frame_store: str = Field("", description="Frame store URI; empty = <data_dir>/frames.")

    # Prometheus
    prometheus_embedded: bool = Field(True, description="Start Prometheus (Debian's package) with `vigil stack up`, scraping Vigil and Triton.")
    prometheus_port: int = Field(19090, description="Port of the embedded Prometheus (on 127.0.0.1).")
    prometheus_scrape_interval_s: float = Field(5.0, gt=0, description="Scrape and rule-evaluation interval of the embedded Prometheus.")
    prometheus_retention: str = Field("2d", description="How long the embedded Prometheus keeps samples.")

    # Traces (vigil/telemetry.py)
    traces_clickhouse: bool = Field(False, description="Store spans in ClickHouse's otel_traces (the OpenTelemetry Collector's layout).")
    trace_sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of frames traced (decided at ingest).")

    # Metrics (Prometheus) of the process: vigil/metrics.py
    metrics_port: int = Field(0, ge=0, le=65535, description="Serve Prometheus metrics at /metrics on this port (0 = off).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint listens on (0.0.0.0 in a pod).")

    # Security of the HTTP services (vigil/auth.py, vigil/tls.py; README "Security")
    api_tokens_file: Path | None = Field(None, description="Bearer API tokens: names, roles, camera scopes and SHA-256 "
                                         "hashes (`vigil api-token add`); empty = <data_dir>/auth/tokens.json.")
    api_tokens: SecretStr | None = Field(None, description="More API tokens, as the tokens file's JSON (hashes), "
                                         "from a secret (e.g. a Kubernetes Secret).")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain): the HTTP services (console, re-ID "
                                       "API, DATEX II feed) serve HTTPS with it and tls_key_file; empty = HTTP.")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")

    # Common
    ready_timeout_s: float = Field(30.0, description="Health-check timeout for each embedded component.")

    @field_validator("data_dir", "model_repository", "flink_lib_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def topic(self, name: str) -> str:
        """The deployed name of a logical topic: the namespace prefix, then the name."""
        return f"{self.topic_namespace}{name}"

    def logical_topic(self, deployed: str) -> str:
        """The logical name of a deployed topic (the namespace prefix taken off), as metrics label it."""
        return deployed[len(self.topic_namespace):] if deployed.startswith(self.topic_namespace) else deployed

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        host, _, port = self.kafka_bootstrap.split(",")[0].rpartition(":")
        return host, int(port)

    @property
    def triton_host_port(self) -> tuple[str, int]:
        host, _, port = self.triton_url.rpartition(":")
        return host, int(port)

    @property
    def clickhouse_port(self) -> int:
        from urllib.parse import urlparse

        return urlparse(self.clickhouse_dsn).port or 8123

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "clickhouse"

    @property
    def frame_store_uri(self) -> str:
        return self.frame_store or (self.data_dir / "frames").as_uri()

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def tokens_path(self) -> Path:
        return self.api_tokens_file or self.data_dir / "auth" / "tokens.json"

    @property
    def flink_jars(self) -> list[Path]:
        return [self.flink_lib_dir / "flink-connector-kafka.jar", self.flink_lib_dir / "kafka-clients.jar"]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
