"""The MQTT output: incidents and operators' verdicts published as JSON to an MQTT broker (Mosquitto, EMQX, HiveMQ),
QoS 1, for traffic-centre dashboards and field systems that speak MQTT rather than Kafka or HTTP.

    <VIGIL_MQTT_TOPIC_PREFIX>/<camera_id>/incidents                  every Incident revision
    <VIGIL_MQTT_TOPIC_PREFIX>/<camera_id>/verdicts                   every IncidentVerdict
    <VIGIL_MQTT_TOPIC_PREFIX>/<camera_id>/incidents/<incident_id>    with VIGIL_MQTT_RETAIN_STATE: the incident's latest
                                                                     revision, retained; removed when it is cleared

The payload is the webhook's body: {"type": ..., "id": <deterministic delivery id>, "topic": <the topic>,
"record": {...}}; a subscriber de-duplicates on "id" (at-least-once: a replay after a crash publishes again).
Camera and incident ids are percent-encoded in topic levels ('/', '+', '#', '%' and spaces; ':' stays), so a topic
level is always one level and never a wildcard.

`write` publishes at once (paho queues while disconnected and re-sends on reconnect); `flush` waits for the broker's
PUBACK of every message written since the last successful flush, up to VIGIL_MQTT_FLUSH_TIMEOUT_S, and returns False
when they did not all come (broker down, refused credentials): the offsets then stay uncommitted. paho's network
thread reconnects with capped exponential back-off. The password is a SecretStr, never logged nor in stats.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt
from pydantic import Field, SecretStr

from vigil.config import Settings
from vigil.outputs.base import Output
from vigil.outputs.webhook import delivery_id
from vigil.runtime import StartupError
from vigil.topics import Topic

log = logging.getLogger("vigil.outputs.mqtt")

SUBTOPICS = {"Incident": "incidents", "IncidentVerdict": "verdicts"}
QOS = 1


class MqttSettings(Settings):
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 is the usual TLS port).")
    mqtt_username: str = Field("", description="User name; empty = anonymous.")
    mqtt_password: SecretStr = Field(SecretStr(""), description="Password (never logged).")
    mqtt_tls: bool = Field(False, description="TLS with the system's CAs (implied by mqtt_tls_ca_file).")
    mqtt_tls_ca_file: Path | None = Field(None, description="CA bundle that signed the broker's certificate; "
                                          "switches TLS on.")
    mqtt_client_id: str = Field("", description="MQTT client id; empty = vigil-<host>-<pid>. Must be unique per "
                                "connection: the broker drops an older connection with the same id.")
    mqtt_topic_prefix: str = Field("vigil", description="First topic level(s) of every published topic.")
    mqtt_records: list[str] = Field(default_factory=lambda: list(SUBTOPICS), description="Record types published.")
    mqtt_retain_state: bool = Field(False, description="Also keep each open incident's latest revision retained on "
                                    "<prefix>/<camera>/incidents/<incident_id>.")
    mqtt_flush_timeout_s: float = Field(10.0, gt=0, description="How long a flush waits for the broker's PUBACKs.")
    mqtt_keepalive_s: int = Field(30, ge=5, description="MQTT keep-alive.")
    mqtt_reconnect_max_s: int = Field(30, ge=1, description="Cap of the reconnect back-off (from 1 s, doubling).")


def topic_level(value: str) -> str:
    """`value` as one MQTT topic level: '/', '+', '#', '%', spaces and control characters percent-encoded."""
    return quote(value, safe=":-_.~@!$&'()*,;=") or "_"


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    # paho marks a message published while disconnected with rc NO_CONN and is_published() then raises, although
    # the client keeps it queued and sends it on reconnect; the flag it sets on the PUBACK is what counts.
    published = getattr(info, "_published", None)
    if published is None:
        return info.is_published()
    return bool(published)


class MqttOutput(Output):
    name = "mqtt"

    def __init__(self, settings: Settings):
        if not isinstance(settings, MqttSettings):
            settings = MqttSettings(**settings.model_dump())  # the sink's settings, plus VIGIL_MQTT_* from env
        self.settings = settings
        prefix = settings.mqtt_topic_prefix.strip("/")
        problems = []
        if not prefix or any(c in prefix for c in "+#\0"):
            problems.append(f"VIGIL_MQTT_TOPIC_PREFIX {settings.mqtt_topic_prefix!r} must be non-empty, without + or #")
        unknown = sorted(set(settings.mqtt_records) - set(SUBTOPICS))
        if unknown:
            problems.append(f"VIGIL_MQTT_RECORDS names {unknown}; the MQTT output publishes {sorted(SUBTOPICS)}")
        ca_file = settings.mqtt_tls_ca_file
        ca_file = ca_file if ca_file is not None and str(ca_file) not in ("", ".") else None
        if ca_file is not None and not ca_file.is_file():
            problems.append(f"VIGIL_MQTT_TLS_CA_FILE {ca_file} is not a file")
        if problems:
            raise StartupError("MQTT output: " + "; ".join(problems))
        self.prefix = prefix
        self.records = set(settings.mqtt_records)
        self.address = f"{settings.mqtt_host}:{settings.mqtt_port}"
        client_id = settings.mqtt_client_id or f"vigil-{socket.gethostname()}-{os.getpid()}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=True)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username,
                                        settings.mqtt_password.get_secret_value() or None)
        if settings.mqtt_tls or ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file) if ca_file is not None else None)
        self.client.reconnect_delay_set(1, settings.mqtt_reconnect_max_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self._last_refusal = ""
        self.inflight: list[tuple[str, mqtt.MQTTMessageInfo]] = []
        self.published = self.acknowledged = self.flush_failures = self.connects = 0
        self.client.connect_async(settings.mqtt_host, settings.mqtt_port, keepalive=settings.mqtt_keepalive_s)
        self.client.loop_start()  # paho's network thread: connects, re-connects, re-sends unacknowledged messages

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if str(reason_code) != self._last_refusal:
                log.error("MQTT broker %s refused the connection: %s", self.address, reason_code)
            self._last_refusal = str(reason_code)
            return
        self._last_refusal = ""
        self.connects += 1
        self.connected.set()
        log.info("connected to the MQTT broker %s", self.address)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            log.warning("disconnected from the MQTT broker %s (%s); reconnecting", self.address, reason_code)
        self.connected.clear()

    def accepts(self, topic: Topic, record_type: str) -> bool:
        return record_type in self.records

    def topic_of(self, record_type: str, record: dict) -> str:
        return f"{self.prefix}/{topic_level(record['camera_id'])}/{SUBTOPICS[record_type]}"

    def state_topic(self, record: dict) -> str:
        return f"{self.topic_of('Incident', record)}/{topic_level(record['incident_id'])}"

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        if record_type not in self.records:
            raise ValueError(f"the MQTT output takes {sorted(self.records)} records, not {record_type}")
        ident = delivery_id(record_type, record)
        payload = json.dumps({"type": record_type, "id": ident, "topic": topic.name, "record": record},
                             separators=(",", ":"), ensure_ascii=False).encode()
        self._publish(self.topic_of(record_type, record), payload, retain=False)
        if record_type == "Incident" and self.settings.mqtt_retain_state:
            cleared = record.get("state") == "cleared"
            self._publish(self.state_topic(record), b"" if cleared else payload, retain=True)

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise ValueError(f"the MQTT client's queue is full; not published to {topic}")
        self.inflight.append((topic, info))
        self.published += 1

    def pending(self) -> int:
        return len(self.inflight)

    def flush(self, stop: threading.Event | None = None) -> bool:
        deadline = time.monotonic() + self.settings.mqtt_flush_timeout_s
        while True:
            waiting = [(topic, info) for topic, info in self.inflight if not _acknowledged(info)]
            self.acknowledged += len(self.inflight) - len(waiting)
            self.inflight = waiting
            if not waiting:
                return True
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                self.flush_failures += 1
                log.error("%d MQTT messages not acknowledged by %s within %.1fs (%s); kept for the next flush",
                          len(waiting), self.address, self.settings.mqtt_flush_timeout_s,
                          "connected" if self.connected.is_set() else "not connected")
                return False
            if stop is not None:
                stop.wait(0.01)
            else:
                time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def stats(self) -> dict:
        return {"mqtt_published": self.published, "mqtt_acknowledged": self.acknowledged,
                "mqtt_unacknowledged": len(self.inflight), "mqtt_flush_failures": self.flush_failures,
                "mqtt_connected": self.connected.is_set(), "mqtt_connects": self.connects, "mqtt_broker": self.address}
