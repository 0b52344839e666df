"""The webhook output against a real HTTP receiver (http.server on 127.0.0.1): every request is signed and verifies
with `verify_signature`; 5xx and 429 are retried with back-off (Retry-After honoured) until one delivery is accepted;
a receiver that keeps failing, or answers 400, gets the record dead-lettered (DeadLetter with the URL and the last
status) while the flush still succeeds; `stop` during a back-off fails the flush and keeps the record; the secret
never shows in logs, stats or dead letters."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.stack.process import free_port
from services.sink.service import OUTPUTS, Sink, SinkSettings
from vigil.avro_codec import AvroCodec
from vigil.outputs.base import Output
from vigil.outputs.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookOutput,
    WebhookSettings,
    delivery_id,
    redact_url,
    sign,
    verify_signature,
)
from vigil.runtime import DeadLetters, StartupError
from vigil.topics import INCIDENTS, TOPICS

SECRET = "whsec-7f3a9c0e51d24b8fa6e2-never-print-me"
T0 = 1_795_000_000_000


def incident(revision: int = 1, camera_id: str = "gate", state: str = "open") -> dict:
    return {"incident_id": f"{camera_id}:stopped_vehicle:{T0}", "revision": revision, "camera_id": camera_id,
            "kind": "stopped_vehicle", "state": state, "severity": "high", "zones": ["hard-shoulder"],
            "track_ids": [7, 9], "event_ids": [f"{camera_id}:stopped_vehicle:{T0}:7"], "opened_ms": T0,
            "updated_ms": T0 + 30_000, "cleared_ms": T0 + 90_000 if state == "cleared" else None, "score": 42.5,
            "threshold": 30.0, "snapshot_uri": f"file:///frames/{camera_id}/snap.jpg",
            "clip_uri": f"file:///frames/{camera_id}/clip.mp4", "detection_suspended": False,
            "emitted_ts_ms": T0 + 31_000}


def verdict() -> dict:
    return {"verdict_id": f"gate:stopped_vehicle:{T0}:confirmed:ana:{T0 + 60_000}",
            "incident_id": f"gate:stopped_vehicle:{T0}", "camera_id": "gate", "kind": "stopped_vehicle",
            "zones": ["hard-shoulder"], "verdict": "confirmed", "reason": None, "actor": "ana",
            "decided_ms": T0 + 60_000}


class Receiver:
    """A real HTTP endpoint: answers from `script` (status, headers) in turn, then `default`; keeps every request and
    whether its signature verified."""

    def __init__(self, script=(), default=(200, {})):
        self.script, self.default, self.requests = list(script), default, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                receiver.requests.append({
                    "path": self.path, "headers": headers, "body": body, "at": time.monotonic(),
                    "verified": verify_signature(SECRET, headers.get(TIMESTAMP_HEADER), body,
                                                 headers.get(SIGNATURE_HEADER), tolerance_s=300)})
                status, extra = receiver.script.pop(0) if receiver.script else receiver.default
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vigil"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


class Collected(Output):
    """Stands in for the Kafka output the dead letters go to: keeps them."""

    name = "collected"

    def __init__(self):
        self.records = []

    def write(self, topic, record_type, record, key=None, timestamp_ms=None):
        self.records.append((topic.name, record_type, record, key))

    def flush(self, stop=None):
        return True


def make_output(tmp_path, urls, **overrides):
    settings = WebhookSettings(data_dir=tmp_path, webhook_urls=urls, webhook_secret=SECRET,
                               webhook_backoff_base_s=0.01, webhook_backoff_max_s=0.05, webhook_connect_timeout_s=2,
                               webhook_timeout_s=5, **overrides)
    dead = Collected()
    out = WebhookOutput(settings, dead_letters=DeadLetters(dead, "sink", settings))
    return out, dead


def test_signed_delivery_is_retried_through_two_500s_and_accepted_once(tmp_path, receivers):
    receiver = receivers(script=[(500, {}), (500, {})])
    out, dead = make_output(tmp_path, [receiver.url], webhook_max_attempts=5)
    record = incident()
    assert out.accepts(INCIDENTS, "Incident") and out.accepts(INCIDENTS, "IncidentVerdict")
    out.write(INCIDENTS, "Incident", record, key=b"gate")
    assert out.pending() == 1
    assert out.flush() is True
    assert out.pending() == 0
    assert len(receiver.requests) == 3
    assert all(r["verified"] for r in receiver.requests)
    assert {r["headers"]["X-Vigil-Delivery"] for r in receiver.requests} == {f"gate:stopped_vehicle:{T0}:1"}
    assert {r["path"] for r in receiver.requests} == {"/hooks/vigil"}
    body = json.loads(receiver.requests[-1]["body"])
    assert body == {"type": "Incident", "id": f"gate:stopped_vehicle:{T0}:1", "topic": "incidents.v1",
                    "record": record}
    assert receiver.requests[-1]["headers"]["Content-Type"] == "application/json"
    assert receiver.requests[-1]["headers"]["X-Vigil-Event"] == "Incident"
    stats = out.stats()
    assert (stats["webhook_delivered"], stats["webhook_retries"], stats["webhook_dead_letters"]) == (1, 2, 0)
    assert dead.records == []
    out.close()


def test_records_go_to_every_url_in_order_and_verdicts_have_their_own_id(tmp_path, receivers):
    first, second = receivers(), receivers(script=[(503, {})])
    out, dead = make_output(tmp_path, [first.url, second.url])
    out.write(INCIDENTS, "Incident", incident(1))
    out.write(INCIDENTS, "Incident", incident(2, state="updated"))
    out.write(INCIDENTS, "IncidentVerdict", verdict())
    assert out.flush() is True
    ids = [f"gate:stopped_vehicle:{T0}:1", f"gate:stopped_vehicle:{T0}:2", verdict()["verdict_id"]]
    assert [json.loads(r["body"])["id"] for r in first.requests] == ids
    assert [json.loads(r["body"])["id"] for r in second.requests] == [ids[0], *ids]  # the 503 was retried
    assert all(r["verified"] for r in first.requests + second.requests)
    assert dead.records == []
    out.close()


def test_a_receiver_that_keeps_failing_gets_the_record_dead_lettered_and_the_flush_still_succeeds(tmp_path, receivers):
    receiver = receivers(default=(500, {}))
    out, dead = make_output(tmp_path, [receiver.url], webhook_max_attempts=3)
    record = incident()
    out.write(INCIDENTS, "Incident", record, key=b"gate")
    assert out.flush() is True  # nothing blocks the pipeline ...
    assert len(receiver.requests) == 3
    assert len(dead.records) == 1  # ... and nothing is lost silently
    topic, record_type, letter, key = dead.records[0]
    assert (topic, record_type, key) == ("deadletter.v1", "DeadLetter", b"gate")
    assert receiver.url in letter["reason"] and "HTTP 500" in letter["reason"] and "3 attempts" in letter["reason"]
    assert f"gate:stopped_vehicle:{T0}:1" in letter["reason"]
    assert (letter["source_topic"], letter["service"]) == ("incidents.v1", "sink")
    codec = AvroCodec()
    codec.encode("DeadLetter", letter)  # a valid DeadLetter
    assert codec.decode(letter["value"]) == record  # carrying the record itself
    assert out.stats()["webhook_dead_letters"] == 1
    assert out.pending() == 0
    out.close()


def test_a_400_is_not_retried_and_is_dead_lettered(tmp_path, receivers):
    receiver = receivers(default=(400, {}))
    out, dead = make_output(tmp_path, [receiver.url], webhook_max_attempts=5)
    out.write(INCIDENTS, "IncidentVerdict", verdict())
    assert out.flush() is True
    assert len(receiver.requests) == 1
    (_, _, letter, _), = dead.records
    assert "HTTP 400" in letter["reason"] and "not retried" in letter["reason"] and receiver.url in letter["reason"]
    assert out.stats()["webhook_retries"] == 0
    out.close()


def test_429_with_retry_after_waits_that_long(tmp_path, receivers):
    receiver = receivers(script=[(429, {"Retry-After": "1"})])
    out, dead = make_output(tmp_path, [receiver.url])
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is True
    assert len(receiver.requests) == 2
    assert receiver.requests[1]["at"] - receiver.requests[0]["at"] >= 0.95  # not the 0.05 s back-off cap
    assert dead.records == []
    out.close()


def test_connection_refused_is_retried_then_dead_lettered(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/down"
    out, dead = make_output(tmp_path, [url], webhook_max_attempts=2)
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is True
    (_, _, letter, _), = dead.records
    assert url in letter["reason"] and "connection error" in letter["reason"] and "2 attempts" in letter["reason"]
    assert out.stats()["webhook_attempts"] == 2
    out.close()


def test_stop_during_the_back_off_fails_the_flush_and_keeps_the_record(tmp_path, receivers):
    receiver = receivers(script=[(503, {})])
    out, dead = make_output(tmp_path, [receiver.url], webhook_max_attempts=5)
    out.settings.webhook_backoff_base_s = out.settings.webhook_backoff_max_s = 30.0
    out.write(INCIDENTS, "Incident", incident())
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert out.flush(stop) is False  # the offsets are not committed
    assert time.monotonic() - started < 5
    assert out.pending() == 1 and dead.records == []
    out.settings.webhook_backoff_base_s = out.settings.webhook_backoff_max_s = 0.01
    assert out.flush() is True  # the replay (here: the next flush) delivers it, under the same delivery id
    assert [r["headers"]["X-Vigil-Delivery"] for r in receiver.requests] == [f"gate:stopped_vehicle:{T0}:1"] * 2
    out.close()


def test_verify_signature_refuses_a_wrong_secret_a_changed_body_and_an_old_timestamp():
    body = b'{"type":"Incident","id":"x"}'
    now = time.time()
    header = sign(SECRET, int(now), body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, str(int(now)), body, header)
    assert verify_signature(SECRET.encode(), int(now), body.decode(), header)
    assert not verify_signature("a-wrong-secret", str(int(now)), body, header)
    assert not verify_signature(SECRET, str(int(now)), body + b" ", header)
    assert not verify_signature(SECRET, str(int(now) + 1), body, header)  # the timestamp is signed too
    old = int(now) - 600
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body), tolerance_s=300)
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body), tolerance_s=900)
    for bad_header in (None, "", "sha256=", "md5=" + header[7:], header[7:], "sha256=zz"):
        assert not verify_signature(SECRET, int(now), body, bad_header)
    for bad_timestamp in (None, "", "soon", "12.5"):
        assert not verify_signature(SECRET, bad_timestamp, body, header)
    assert verify_signature(SECRET, int(now), body, f"sha256={'0' * 64}, {header}")  # secret rotation: any matches


def test_a_receiver_with_the_wrong_secret_fails_verification(tmp_path, receivers):
    receiver = receivers()
    settings = WebhookSettings(data_dir=tmp_path, webhook_urls=[receiver.url], webhook_secret="not-the-receivers")
    out = WebhookOutput(settings, dead_letters=DeadLetters(Collected(), "sink", settings))
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is True
    assert [r["verified"] for r in receiver.requests] == [False]
    out.close()


def test_the_secret_never_appears_in_logs_stats_dead_letters_or_requests(tmp_path, receivers, caplog):
    caplog.set_level(logging.DEBUG)
    failing, refusing = receivers(default=(500, {})), receivers(default=(401, {}))
    out, dead = make_output(tmp_path, [failing.url, refusing.url, f"http://127.0.0.1:{free_port()}/"],
                            webhook_max_attempts=2)
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is True
    assert len(dead.records) == 3 and caplog.text  # it did log: retries and dead letters
    for text in (caplog.text, json.dumps(out.stats()), repr(dead.records), repr(out.settings),
                 out.settings.model_dump_json(), *(r["body"].decode() + repr(r["headers"])
                                                   for r in failing.requests + refusing.requests)):
        assert SECRET not in text
    out.close()
    with pytest.raises(StartupError) as error:
        WebhookOutput(WebhookSettings(data_dir=tmp_path, webhook_urls=["ftp://x/"], webhook_secret=SECRET))
    assert "ftp://x/" in str(error.value) and SECRET not in str(error.value)


def test_start_up_refuses_missing_urls_secret_and_unknown_records(tmp_path):
    with pytest.raises(StartupError, match="VIGIL_WEBHOOK_URLS is empty.*VIGIL_WEBHOOK_SECRET is empty"):
        WebhookOutput(WebhookSettings(data_dir=tmp_path))
    with pytest.raises(StartupError, match="unknown record types .'Incidnet'."):
        WebhookOutput(WebhookSettings(data_dir=tmp_path, webhook_urls=["https://x.example/h"], webhook_secret=SECRET,
                                      webhook_records=["Incidnet"]))


def test_urls_are_shown_without_credentials_and_ids_are_deterministic():
    assert redact_url("https://user:pw@hooks.example:8443/in?token=abc") == "https://hooks.example:8443/in?…"
    assert redact_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    assert delivery_id("Incident", incident(3)) == f"gate:stopped_vehicle:{T0}:3"
    assert delivery_id("IncidentVerdict", verdict()) == verdict()["verdict_id"]
    other = {"camera_id": "gate", "status": "ONLINE", "ts_ms": 1}
    assert delivery_id("CameraStatus", other) == delivery_id("CameraStatus", dict(reversed(other.items())))


def test_the_sink_builds_it_from_the_environment_and_can_consume_incidents(tmp_path, monkeypatch, receivers):
    receiver = receivers()
    assert OUTPUTS["webhook"] is WebhookOutput
    assert TOPICS["incidents.v1"] is INCIDENTS
    monkeypatch.setenv("VIGIL_WEBHOOK_URLS", json.dumps([receiver.url]))
    monkeypatch.setenv("VIGIL_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("VIGIL_SINK_TOPICS", '["incidents.v1"]')
    monkeypatch.setenv("VIGIL_SINK_OUTPUTS", '["webhook"]')
    settings = SinkSettings(data_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    assert settings.sink_topics == ["incidents.v1"] and settings.sink_outputs == ["webhook"]
    sink = Sink(settings)  # builds OUTPUTS["webhook"](settings): its own Kafka producer for the dead letters
    (out,) = sink.stores
    assert isinstance(out, WebhookOutput) and sink.inputs == [INCIDENTS]
    assert out.settings.webhook_urls == [receiver.url] and out.settings.kafka_bootstrap == settings.kafka_bootstrap
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is True and [r["verified"] for r in receiver.requests] == [True]
    out.close()
