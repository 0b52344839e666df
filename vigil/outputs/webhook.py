"""The webhook output: each accepted record POSTed as signed JSON to one or more URLs, retried, dead-lettered at last.

Body (UTF-8 JSON):  {"type": "Incident", "id": "<delivery id>", "topic": "<topic>", "record": {...}}

The delivery id is the record's deterministic id (`<incident_id>:<revision>` for an Incident, `verdict_id` for an
IncidentVerdict, a hash of the record for other types), so it is the same on every retry and on every replay after a
crash: a receiver de-duplicates on it (`X-Vigil-Delivery` carries it too). Every request is signed, as Stripe and
GitHub sign theirs:

    X-Vigil-Timestamp: <unix seconds, when this attempt was sent>
    X-Vigil-Signature: sha256=<hex HMAC-SHA256, key = VIGIL_WEBHOOK_SECRET, over "<timestamp>.<raw body bytes>">

A receiver recomputes the HMAC over the raw body it received, compares in constant time, and refuses a timestamp
older than its tolerance (replay protection): `verify_signature` below does exactly that.

Delivery: per URL, records go in order (one worker thread per URL, so a slow URL does not hold up the others).
Connection errors, timeouts, 408, 429 and 5xx are retried with exponential back-off and jitter (`Retry-After` is
honoured, up to VIGIL_WEBHOOK_RETRY_AFTER_MAX_S); other 4xx and 3xx are not retried. A record that got no 2xx after
VIGIL_WEBHOOK_MAX_ATTEMPTS goes to deadletter.v1 (the platform's DeadLetter, reason naming the URL and the last
status) and the flush goes on: an unreachable receiver never blocks the pipeline, and nothing is dropped silently.
When `stop` is set during a back-off, flush returns False: the offsets stay uncommitted and a restart re-delivers.
The secret is a SecretStr: it is never logged, never in stats and never in an error or a dead letter.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr

from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.outputs.base import Output
from vigil.outputs.kafka import KafkaOutput
from vigil.runtime import DeadLetters, StartupError
from vigil.topics import TOPICS, Topic

log = logging.getLogger("vigil.outputs.webhook")

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
DELIVERY_HEADER = "X-Vigil-Delivery"
EVENT_HEADER = "X-Vigil-Event"
RETRIED_STATUSES = {408, 429}
KNOWN_RECORDS = {record for topic in TOPICS.values() for record in topic.records}


class WebhookSettings(Settings):
    webhook_urls: list[str] = Field(default_factory=list, description="URLs every accepted record is POSTed to, JSON "
                                    "list (http:// or https://).")
    webhook_secret: SecretStr = Field(SecretStr(""), description="HMAC-SHA256 key of X-Vigil-Signature (required; "
                                      "never logged).")
    webhook_records: list[str] = Field(default_factory=lambda: ["Incident", "IncidentVerdict"],
                                       description="Record types POSTed; others are not written to the webhook.")
    webhook_connect_timeout_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout of one attempt.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Read/write timeout of one attempt.")
    webhook_max_attempts: int = Field(5, ge=1, description="Attempts per record and URL before it is dead-lettered.")
    webhook_backoff_base_s: float = Field(0.5, ge=0, description="Back-off before the 2nd attempt; doubles each time.")
    webhook_backoff_max_s: float = Field(30.0, ge=0, description="Cap of the exponential back-off.")
    webhook_retry_after_max_s: float = Field(120.0, ge=0, description="Longest Retry-After (429/503) honoured.")


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The X-Vigil-Signature value: `sha256=` + hex HMAC-SHA256 over `<timestamp>.<body>`."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str | bytes, timestamp: str | int | None, body: bytes | str, header: str | None,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """For receivers: True when `header` (X-Vigil-Signature) is the HMAC of `timestamp` (X-Vigil-Timestamp) and the raw
    `body`, and the timestamp is within `tolerance_s` of `now`. Never raises on malformed input; comparison is
    constant-time. The header may list several comma-separated `sha256=` values (any match passes)."""
    if not secret or timestamp is None or not header:
        return False
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = sign(secret, sent, raw)
    return any(hmac.compare_digest(expected.encode(), candidate.strip().encode())
               for candidate in header.split(",") if candidate.strip().startswith("sha256="))


def delivery_id(record_type: str, record: dict) -> str:
    """The record's deterministic id: stable across retries and replays, distinct per revision."""
    if record_type == "Incident":
        return f"{record['incident_id']}:{record['revision']}"
    if record_type == "IncidentVerdict":
        return str(record["verdict_id"])
    for name in ("event_id", "match_id", "bin_id", "passage_id", "frame_id"):
        if isinstance(record.get(name), str):
            return record[name]
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=_json_default).encode()
    return f"{record_type}:{hashlib.sha256(canonical).hexdigest()[:32]}"


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def redact_url(url: str) -> str:
    """The URL without user info and query (they may hold credentials): safe for logs, stats and dead letters."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when else None


@dataclass
class _Pending:
    topic: Topic
    record_type: str
    record: dict
    key: bytes | None
    delivery_id: str
    body: bytes


class _Message:
    """What DeadLetters quotes of a consumed message, for a record the output holds (it sees records, not messages:
    partition and offset are unknown, -1)."""

    def __init__(self, topic_name: str, key: bytes | None, value: bytes | None):
        self._topic, self._key, self._value = topic_name, key, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return -1

    def offset(self) -> int:
        return -1

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


class WebhookOutput(Output):
    name = "webhook"

    def __init__(self, settings: Settings, dead_letters: DeadLetters | None = None, transport=None,
                 service: str = "sink"):
        if not isinstance(settings, WebhookSettings):
            settings = WebhookSettings(**settings.model_dump())  # the sink's settings, plus VIGIL_WEBHOOK_* from env
        self.settings = settings
        self.urls = list(dict.fromkeys(settings.webhook_urls))
        self._secret = settings.webhook_secret.get_secret_value().encode()
        problems = []
        if not self.urls:
            problems.append("VIGIL_WEBHOOK_URLS is empty (a JSON list of http(s) URLs)")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"{redact_url(url)!r} is not an http(s) URL")
        if not self._secret:
            problems.append("VIGIL_WEBHOOK_SECRET is empty (receivers verify X-Vigil-Signature with it)")
        unknown = sorted(set(settings.webhook_records) - KNOWN_RECORDS)
        if unknown:
            problems.append(f"VIGIL_WEBHOOK_RECORDS names unknown record types {unknown}; "
                            f"known: {sorted(KNOWN_RECORDS)}")
        if problems:
            raise StartupError("webhook output: " + "; ".join(problems))
        self.records = set(settings.webhook_records)
        self._owns_dead_letters = dead_letters is None
        if dead_letters is None:  # as the sink builds it: its own producer to deadletter.v1, flushed by flush()
            dead_letters = DeadLetters(KafkaOutput(settings), service, settings)
        self.dead_letters = dead_letters
        self._codec = getattr(dead_letters.output, "codec", None)
        self._dead_letter_lock = threading.Lock()
        if logging.getLogger("httpx").level == logging.NOTSET:
            # httpx logs every request with its full URL at INFO; URLs may carry tokens, and ours are shown redacted
            logging.getLogger("httpx").setLevel(logging.WARNING)
        timeout = httpx.Timeout(settings.webhook_timeout_s, connect=settings.webhook_connect_timeout_s)
        headers = {"Content-Type": "application/json", "User-Agent": "vigil-webhook/1"}
        self.clients = {url: httpx.Client(timeout=timeout, headers=headers, transport=transport,
                                          follow_redirects=False) for url in self.urls}
        self.queues: dict[str, list[_Pending]] = {url: [] for url in self.urls}
        self.pool = ThreadPoolExecutor(max_workers=len(self.urls), thread_name_prefix="webhook")
        self.random = random.Random()
        self.delivered = self.retries = self.dead_lettered = self.attempts = 0
        self._counter_lock = threading.Lock()

    def accepts(self, topic: Topic, record_type: str) -> bool:
        return record_type in self.records

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        if record_type not in self.records:
            raise ValueError(f"the webhook output takes {sorted(self.records)} records, not {record_type}")
        ident = delivery_id(record_type, record)
        body = json.dumps({"type": record_type, "id": ident, "topic": topic.name, "record": record},
                          separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()
        pending = _Pending(topic, record_type, record, key, ident, body)
        for url in self.urls:
            self.queues[url].append(pending)

    def pending(self) -> int:
        return len({id(p) for queue in self.queues.values() for p in queue})

    def flush(self, stop: threading.Event | None = None) -> bool:
        busy = [url for url, queue in self.queues.items() if queue]
        completed = True
        if busy:
            futures = [self.pool.submit(self._drain, url, stop) for url in busy]
            results = [future.result() for future in futures]  # wait for every URL, not just up to the first False
            completed = all(results)
        if self._owns_dead_letters and self.dead_letters.output.pending():
            completed = self.dead_letters.output.flush(stop) and completed
        return completed

    def _drain(self, url: str, stop: threading.Event | None) -> bool:
        """Deliver `url`'s queue in order; False when `stop` interrupted a back-off (the rest stays queued)."""
        queue = self.queues[url]
        while queue:
            pending = queue[0]
            outcome = self._deliver(url, pending, stop)
            if outcome is None:
                return False
            delivered, reason = outcome
            if not delivered:
                self._dead_letter(pending, reason)
            queue.pop(0)
        return True

    def _deliver(self, url: str, pending: _Pending, stop: threading.Event | None) -> tuple[bool, str] | None:
        """(True, "") on a 2xx, (False, reason) when it gave up, None when `stop` was set during a back-off."""
        settings, shown = self.settings, redact_url(url)
        last = ""
        for attempt in range(1, settings.webhook_max_attempts + 1):
            timestamp = int(time.time())
            headers = {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(self._secret, timestamp, pending.body),
                       DELIVERY_HEADER: pending.delivery_id, EVENT_HEADER: pending.record_type}
            wait_hint = None
            with self._counter_lock:
                self.attempts += 1
            try:
                response = self.clients[url].post(url, content=pending.body, headers=headers)
            except httpx.TimeoutException as exc:
                last = f"timeout ({type(exc).__name__})"
            except httpx.HTTPError as exc:  # connection refused, reset, DNS, TLS
                last = f"connection error ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    with self._counter_lock:
                        self.delivered += 1
                    return True, ""
                last = f"HTTP {status}"
                if not (status >= 500 or status in RETRIED_STATUSES):
                    return False, (f"POST {shown} answered HTTP {status} (not retried: "
                                   f"{'redirects are not followed' if status < 400 else 'client error'})")
                wait_hint = retry_after_s(response.headers.get("Retry-After"))
            if attempt == settings.webhook_max_attempts:
                break
            delay = min(settings.webhook_backoff_max_s, settings.webhook_backoff_base_s * 2 ** (attempt - 1))
            delay *= self.random.uniform(0.5, 1.0)  # jitter: receivers coming back are not hit in lockstep
            if wait_hint is not None:
                delay = max(delay, min(wait_hint, settings.webhook_retry_after_max_s))
            log.warning("POST %s of %s %s: %s (attempt %d of %d); retrying in %.2fs", shown, pending.record_type,
                        pending.delivery_id, last, attempt, settings.webhook_max_attempts, delay)
            with self._counter_lock:
                self.retries += 1
            if stop is not None:
                if stop.wait(delay):
                    return None
            else:
                time.sleep(delay)
        return False, f"POST {shown} failed after {settings.webhook_max_attempts} attempts; last: {last}"

    def _dead_letter(self, pending: _Pending, reason: str) -> None:
        value = None
        try:
            if self._codec is None:
                self._codec = AvroCodec(self.settings.schema_registry_url)
            value = self._codec.encode(pending.record_type, pending.record, pending.topic.deployed(self.settings))
        except Exception as exc:  # noqa: BLE001 - unexpected (it came decoded from its topic): the dead letter still goes
            reason += f" (record not re-encoded: {type(exc).__name__})"
        message = _Message(pending.topic.deployed(self.settings), pending.key, value)
        with self._dead_letter_lock:
            self.dead_letters.send(message, f"webhook delivery {pending.delivery_id}: {reason}")
            self.dead_lettered += 1

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for client in self.clients.values():
            client.close()
        if self._owns_dead_letters:
            self.dead_letters.output.close()

    def stats(self) -> dict:
        return {"webhook_delivered": self.delivered, "webhook_attempts": self.attempts,
                "webhook_retries": self.retries, "webhook_dead_letters": self.dead_lettered,
                "webhook_pending": self.pending(), "webhook_urls": [redact_url(url) for url in self.urls]}
