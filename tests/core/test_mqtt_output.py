"""The MQTT output against a real Mosquitto (Debian's package, installed by `make setup`) on a free 127.0.0.1 port:
incidents and verdicts reach a paho subscriber with QoS 1 on <prefix>/<camera>/incidents and /verdicts, the retained
per-incident state follows the incident and is removed when it clears, a flush with the broker down returns False
and the messages arrive once it is back (reconnect), and a password broker takes the right credentials only."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app.stack.process import free_port
from services.sink.service import OUTPUTS
from vigil.outputs.mqtt import MqttOutput, MqttSettings, topic_level
from vigil.runtime import StartupError
from vigil.topics import INCIDENTS

T0 = 1_795_000_000_000
PASSWORD = "mqtt-pw-1b7e44d0-never-print-me"


def mosquitto_binary(name: str = "mosquitto") -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup` (it installs Debian's mosquitto package)")
    return found


class Broker:
    """A real mosquitto on 127.0.0.1:<port>, from a config file written here; stop() and start() keep the port."""

    def __init__(self, folder: Path, password_file: Path | None = None):
        self.port, self.folder, self.process = free_port(), folder, None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "allow_anonymous false" if password_file else "allow_anonymous true"]
        if os.geteuid() == 0:
            lines.append("user root")  # as root it would switch to user mosquitto, who cannot read pytest's tmp dir
        if password_file:
            lines.append(f"password_file {password_file}")
        self.config = folder / f"mosquitto-{self.port}.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = folder / f"mosquitto-{self.port}.log"
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def brokers(tmp_path):
    made = []

    def make(**kwargs) -> Broker:
        made.append(Broker(tmp_path, **kwargs))
        return made[-1]

    yield make
    for broker in made:
        broker.stop()


class Subscriber:
    """A paho client subscribed (QoS 1) to `pattern`; resubscribes after a reconnect."""

    def __init__(self, port: int, pattern: str, **credentials):
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        if credentials:
            self.client.username_pw_set(credentials["username"], credentials["password"])
        self.client.on_connect = lambda client, *_: client.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.append(message)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test subscriber did not get its SUBACK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def incident(revision: int = 1, camera_id: str = "gate", state: str = "open") -> dict:
    return {"incident_id": f"{camera_id}:stopped_vehicle:{T0}", "revision": revision, "camera_id": camera_id,
            "kind": "stopped_vehicle", "state": state, "severity": "high", "zones": ["hard-shoulder"],
            "track_ids": [7], "event_ids": [f"{camera_id}:stopped_vehicle:{T0}:7"], "opened_ms": T0,
            "updated_ms": T0 + 30_000, "cleared_ms": T0 + 90_000 if state == "cleared" else None, "score": 42.5,
            "threshold": 30.0, "snapshot_uri": "file:///s.jpg", "clip_uri": "file:///c.mp4",
            "detection_suspended": False, "emitted_ts_ms": T0 + 31_000}


def verdict(camera_id: str = "gate") -> dict:
    return {"verdict_id": f"{camera_id}:stopped_vehicle:{T0}:confirmed:ana:{T0 + 60_000}",
            "incident_id": f"{camera_id}:stopped_vehicle:{T0}", "camera_id": camera_id, "kind": "stopped_vehicle",
            "zones": [], "verdict": "confirmed", "reason": None, "actor": "ana", "decided_ms": T0 + 60_000}


def make_output(tmp_path, port, **overrides) -> MqttOutput:
    settings = {"data_dir": tmp_path, "mqtt_port": port, "mqtt_topic_prefix": f"t{uuid.uuid4().hex[:6]}/vigil",
                "mqtt_flush_timeout_s": 5.0}
    return MqttOutput(MqttSettings(**{**settings, **overrides}))


def wait_connected(out: MqttOutput) -> None:
    assert out.connected.wait(10), f"the output did not connect to {out.address}"


def test_incidents_and_verdicts_reach_a_subscriber_with_qos_1(tmp_path, brokers):
    broker = brokers()
    out = make_output(tmp_path, broker.port)
    subscriber = Subscriber(broker.port, f"{out.prefix}/#")
    try:
        wait_connected(out)
        records = [("Incident", incident(1, "north/bridge")), ("Incident", incident(2, "north/bridge", "updated")),
                   ("IncidentVerdict", verdict("north/bridge"))]
        for record_type, record in records:
            assert out.accepts(INCIDENTS, record_type)
            out.write(INCIDENTS, record_type, record, key=b"north/bridge")
        assert out.pending() == 3
        assert out.flush() is True  # every PUBACK came
        assert out.pending() == 0
        got = subscriber.wait_for(3)
        assert [m.topic for m in got] == [f"{out.prefix}/north%2Fbridge/incidents"] * 2 + \
            [f"{out.prefix}/north%2Fbridge/verdicts"]
        assert all(m.qos == 1 and not m.retain for m in got)
        payloads = [json.loads(m.payload) for m in got]
        assert [p["record"] for p in payloads] == [record for _, record in records]
        assert [p["id"] for p in payloads] == [f"north/bridge:stopped_vehicle:{T0}:1",
                                               f"north/bridge:stopped_vehicle:{T0}:2", verdict("north/bridge")["verdict_id"]]
        assert {p["topic"] for p in payloads} == {"incidents.v1"}
        assert out.stats()["mqtt_acknowledged"] == 3 and out.stats()["mqtt_connected"] is True
    finally:
        subscriber.close()
        out.close()


def test_the_retained_state_follows_the_incident_and_is_removed_when_it_clears(tmp_path, brokers):
    broker = brokers()
    out = make_output(tmp_path, broker.port, mqtt_retain_state=True)
    wait_connected(out)
    state_topic = f"{out.prefix}/gate/incidents/gate:stopped_vehicle:{T0}"
    try:
        out.write(INCIDENTS, "Incident", incident(1))
        out.write(INCIDENTS, "Incident", incident(2, state="updated"))
        assert out.flush() is True
        late = Subscriber(broker.port, f"{out.prefix}/+/incidents/+")  # subscribes after: gets the retained state
        (message,) = late.wait_for(1)
        late.close()
        assert message.topic == state_topic and message.retain
        assert json.loads(message.payload)["record"]["revision"] == 2
        out.write(INCIDENTS, "Incident", incident(3, state="cleared"))
        assert out.flush() is True
        later = Subscriber(broker.port, f"{out.prefix}/+/incidents/+")
        time.sleep(0.5)
        later.close()
        assert later.messages == []  # cleared: nothing retained any more
    finally:
        out.close()


def test_a_flush_with_the_broker_down_fails_and_succeeds_once_it_is_back(tmp_path, brokers, caplog):
    broker = brokers()
    out = make_output(tmp_path, broker.port, mqtt_flush_timeout_s=1.0)
    subscriber = Subscriber(broker.port, f"{out.prefix}/#")
    try:
        wait_connected(out)
        broker.stop()
        deadline = time.monotonic() + 10
        while out.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        out.write(INCIDENTS, "Incident", incident(1))
        started = time.monotonic()
        assert out.flush() is False  # not acknowledged: the sink keeps its offsets uncommitted
        assert time.monotonic() - started < 3
        assert out.pending() == 1 and out.stats()["mqtt_flush_failures"] == 1
        assert "not acknowledged" in caplog.text
        stop = threading.Event()
        stop.set()
        assert out.flush(stop) is False  # stopping: no wait
        broker.start()  # same port: paho reconnects and re-sends
        out.settings.mqtt_flush_timeout_s = 15.0
        assert out.flush() is True
        assert out.pending() == 0 and out.stats()["mqtt_connects"] == 2
        (message,) = subscriber.wait_for(1)
        assert json.loads(message.payload)["id"] == f"gate:stopped_vehicle:{T0}:1" and message.qos == 1
    finally:
        subscriber.close()
        out.close()


def test_a_password_broker_takes_the_right_credentials_only(tmp_path, brokers, caplog):
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "passwords"
    subprocess.run([mosquitto_binary("mosquitto_passwd"), "-b", "-c", str(password_file), "vigil", PASSWORD],
                   check=True, capture_output=True)
    password_file.chmod(0o600)
    broker = brokers(password_file=password_file)
    subscriber = Subscriber(broker.port, "#", username="vigil", password=PASSWORD)
    good = make_output(tmp_path, broker.port, mqtt_username="vigil", mqtt_password=PASSWORD)
    bad = make_output(tmp_path, broker.port, mqtt_username="vigil", mqtt_password="wrong-" + PASSWORD,
                      mqtt_flush_timeout_s=1.0)
    try:
        wait_connected(good)
        good.write(INCIDENTS, "Incident", incident())
        assert good.flush() is True
        assert len(subscriber.wait_for(1)) == 1
        bad.write(INCIDENTS, "Incident", incident())
        assert bad.flush() is False and not bad.connected.is_set()
        assert "refused the connection" in caplog.text
        for text in (caplog.text, json.dumps(good.stats()), json.dumps(bad.stats()), repr(good.settings),
                     good.settings.model_dump_json()):
            assert PASSWORD not in text
    finally:
        subscriber.close()
        good.close()
        bad.close()


def test_topic_levels_are_one_level_never_a_wildcard():
    assert topic_level("gate") == "gate"
    assert topic_level("gate:stopped_vehicle:1795") == "gate:stopped_vehicle:1795"
    assert topic_level("a/b") == "a%2Fb" and topic_level("+") == "%2B" and topic_level("#") == "%23"
    assert topic_level("50%") == "50%25" and topic_level("a b") == "a%20b" and topic_level("") == "_"


def test_registered_in_the_sink_and_refuses_bad_settings(tmp_path):
    assert OUTPUTS["mqtt"] is MqttOutput
    with pytest.raises(StartupError, match="VIGIL_MQTT_RECORDS names .'TrafficBin'."):
        MqttOutput(MqttSettings(data_dir=tmp_path, mqtt_records=["TrafficBin"]))
    with pytest.raises(StartupError, match="VIGIL_MQTT_TOPIC_PREFIX"):
        MqttOutput(MqttSettings(data_dir=tmp_path, mqtt_topic_prefix="vigil/#"))
    with pytest.raises(StartupError, match="VIGIL_MQTT_TLS_CA_FILE"):
        MqttOutput(MqttSettings(data_dir=tmp_path, mqtt_tls_ca_file=tmp_path / "missing.pem"))
