"""Secrets never leave their settings: the real ingest process, pointed at an unreachable camera whose RTSP URL holds
a user and password, and then at the broker with a SASL password it cannot log in with, writes neither secret into
its log, its stats file, the CameraStatus events on the topic (their messages and their raw bytes), or any file of
its data directory; the camera's error message still says which host and port failed. The Kafka settings reach
librdkafka and the Java client of the Flink connectors, and secret settings print as '**********'."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.stack import manager
from app.stack.process import free_port
from tests.conftest import make_settings
from vigil.avro_codec import AvroCodec
from vigil.config import REPO_ROOT, Settings
from vigil.kafka_io import client_config, ensure_topics, java_properties, make_consumer
from vigil.redact import install_log_redaction, redact, redact_url, register
from vigil.topics import CAMERA_STATUS

CAMERA_PASSWORD = "cam-s3cret-4711"
CAMERA_USER = "vigil-camera-user"
KAFKA_PASSWORD = "kafka-s3cret-0815"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """The embedded broker alone (Tansu, as `vigil stack up` starts it)."""
    settings = make_settings(tmp_path_factory.mktemp("broker"))
    manager.up(settings, only=["broker"], log=lambda *_: None)
    yield settings
    manager.down(settings)


def run_ingest(settings: Settings, cameras: Path, data_dir: Path, seconds: float, **env) -> tuple[str, Path]:
    stats = data_dir / "ingest-stats.json"
    variables = {**os.environ, "VIGIL_DATA_DIR": str(data_dir), "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                 "VIGIL_TOPIC_NAMESPACE": settings.topic_namespace, "VIGIL_STATUS_INTERVAL_S": "1",
                 "VIGIL_RECONNECT_INITIAL_S": "0.2", "VIGIL_RECONNECT_MAX_S": "1", "VIGIL_OPEN_TIMEOUT_S": "2",
                 **env}
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", "--cameras", str(cameras), "--max-seconds",
                           str(seconds), "--stats-file", str(stats)], cwd=REPO_ROOT, env=variables,
                          capture_output=True, text=True, timeout=180)
    return done.stdout + done.stderr, stats


def statuses(settings: Settings, camera_id: str) -> list[tuple[bytes, dict]]:
    """(raw value, decoded CameraStatus) of every status of `camera_id` on the namespace's camera-status.v1."""
    consumer = make_consumer(settings, f"secrets-{uuid.uuid4().hex[:6]}", [CAMERA_STATUS.deployed(settings)])
    codec, found, empty_polls = AvroCodec(), [], 0
    try:
        while empty_polls < 6:
            message = consumer.poll(1.0)
            if message is None or message.error():
                empty_polls += 1
                continue
            empty_polls = 0
            record = codec.decode(message.value(), expected="CameraStatus")
            if record["camera_id"] == camera_id:
                found.append((message.value(), record))
    finally:
        consumer.close()
    return found


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_camera_and_kafka_secrets_stay_out_of_logs_events_stats_and_files(broker, tmp_path):
    settings = Settings(**{**broker.model_dump(), "topic_namespace": f"t{uuid.uuid4().hex[:8]}."})
    ensure_topics(settings)
    closed_port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    cameras = config / "cameras.yaml"
    cameras.write_text(f"cameras:\n  - id: gate\n    url: rtsp://{CAMERA_USER}:{CAMERA_PASSWORD}@127.0.0.1:{closed_port}"
                       "/stream\n")
    data_dir = tmp_path / "data"

    output, stats = run_ingest(settings, cameras, data_dir, 6)
    assert CAMERA_PASSWORD not in output and CAMERA_USER not in output, output
    assert f"rtsp://***@127.0.0.1:{closed_port}/stream" in output, output  # still says what failed
    found = statuses(settings, "gate")
    offline = [record for _, record in found if record["state"] == "OFFLINE"]
    assert offline and f"***@127.0.0.1:{closed_port}" in offline[0]["message"], found
    assert not [raw for raw, _ in found if CAMERA_PASSWORD.encode() in raw or CAMERA_USER.encode() in raw]
    assert stats.is_file() and CAMERA_PASSWORD not in stats.read_text()
    assert files_holding(data_dir, CAMERA_PASSWORD) == [] and files_holding(data_dir, CAMERA_USER) == []

    # the broker does not take this SASL login: the Kafka clients fail, and say so, without the password
    output, stats = run_ingest(settings, cameras, data_dir, 4, VIGIL_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                               VIGIL_KAFKA_SASL_MECHANISM="PLAIN", VIGIL_KAFKA_SASL_USERNAME="vigil",
                               VIGIL_KAFKA_SASL_PASSWORD=KAFKA_PASSWORD)
    assert "SASL" in output or "delivery failures" in output or "not acknowledged" in output, output[-3000:]
    assert KAFKA_PASSWORD not in output and CAMERA_PASSWORD not in output, output
    assert files_holding(data_dir, KAFKA_PASSWORD) == [] and files_holding(data_dir, CAMERA_PASSWORD) == []


def test_kafka_security_reaches_librdkafka_and_the_flink_connectors(tmp_path):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="vigil", kafka_sasl_password=KAFKA_PASSWORD,
                        kafka_ssl_ca_file=tmp_path / "ca.pem")
    librdkafka = client_config(settings)
    assert librdkafka | {"bootstrap.servers": "x"} == {
        "bootstrap.servers": "x", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "vigil", "sasl.password": KAFKA_PASSWORD, "ssl.ca.location": str(tmp_path / "ca.pem")}
    java = java_properties(settings)
    assert java == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                        f'username="vigil" password="{KAFKA_PASSWORD}";',
                    "ssl.truststore.type": "PEM", "ssl.truststore.location": str(tmp_path / "ca.pem")}
    assert java_properties(Settings()) == {"security.protocol": "PLAINTEXT"}  # the embedded broker
    # a secret setting prints masked, and once a client was configured with it, redaction knows it
    assert KAFKA_PASSWORD not in repr(settings) and KAFKA_PASSWORD not in settings.model_dump_json()
    assert redact(f"login failed with {KAFKA_PASSWORD}") == "login failed with ***"


def test_one_redaction_helper_for_urls_tokens_and_registered_secrets(caplog):
    assert redact_url("rtsp://admin:pw@10.0.0.7:554/h264") == "rtsp://***@10.0.0.7:554/h264"
    assert redact_url("rtsp://10.0.0.7/h264") == "rtsp://10.0.0.7/h264"
    assert redact("[Errno 111] 'rtsps://u:p@cam/x' and https://a:b@ch:8443/db") == "[Errno 111] 'rtsps://***@cam/x' and https://***@ch:8443/db"
    assert redact("Authorization: Bearer vigil_abcdefgh12345") == "Authorization: Bearer ***"
    register("console-signing-key-123")
    install_log_redaction()
    import logging

    with caplog.at_level(logging.INFO):
        logging.getLogger("vigil.test").info("key %s url %s", "console-signing-key-123", "rtsp://a:b@c/d")
        try:
            raise RuntimeError("cannot open rtsp://a:b@c/d")
        except RuntimeError:
            logging.getLogger("vigil.test").exception("failed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "console-signing-key-123" not in text and "a:b@" not in text and "rtsp://***@c/d" in text
