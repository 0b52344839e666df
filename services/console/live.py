"""Live state of every camera, from the Kafka topics, pushed to every open console over one WebSocket each.

One consumer thread per console process (its own group id, from the latest offsets, nothing committed) reads
`detections.v1`, `camera-status.v1` and `incidents.v1` and keeps per camera the newest DetectionBatch (its frame's
JPEG is read from the frame store only while some console is watching), the newest CameraStatus and whether an open
`camera_moved` incident says the view moved. Nothing here polls ClickHouse: the store is read once at start-up, for
the health badges of cameras that do not report again until their next status interval.

Fan-out never queues frames: each browser has one slot per camera holding the newest frame not yet sent, so a slow
browser (or a hidden tab) gets the latest picture, never a backlog; frames it missed are counted as dropped. Events
(health, incidents, verdicts) are small and go out in order. A browser may ask for frames of only some cameras (the
tiles in view), or none (on an incident page).

Wire format on `/api/live/ws`: text messages are JSON events {"t": "hello" | "camera" | "status" | "incident" |
"verdict", ...}; a binary message is one frame: 4 bytes big-endian header length, the header (JSON: camera,
frame_id, capture_ts_ms, width, height, boxes, classes, track ids, confidences, pushed_ms) and the JPEG. The page
acknowledges every frame it decoded ({"t": "ack", "n": k}); the console keeps at most `VIGIL_CONSOLE_WINDOW_FRAMES`
unacknowledged frames in flight per page, so a page that draws slower than frames arrive never builds a backlog in the
socket buffers (it gets each camera's newest frame as soon as it is ready). The page also reports what it drew
({"t": "drawn", "samples": [[capture_ts_ms, pushed_ms, drawn_ms], ...]}) about once a second: that gives the
capture → tile delay `GET /api/live/stats` shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect

from services.console.auth import Caller, caller_from, caller_of_token, require
from services.console.sessions import COOKIE
from vigil.auth import bearer

log = logging.getLogger("vigil.console.live")
router = APIRouter(prefix="/api/live", tags=["live"])

MOVED_KINDS = ("camera_moved",)
KEEP_INCIDENTS = 5000  # latest revision of this many recent incidents kept (fallback while the sink catches up)
DELAY_WINDOW_S = 30.0
PUSH_BURST = 2.0  # frames a camera may push at once after a pause (jitter), within its `console_push_fps`
# The live consumer waits at most this long for data per fetch (librdkafka's default, 500 ms, would add to the delay)
FETCH_WAIT_MS = 25


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class CameraState:
    camera_id: str
    geometry: dict | None = None  # zones and lanes from the camera file
    status: dict | None = None  # the newest CameraStatus (as JSON)
    moved_by: set = field(default_factory=set)  # open camera_moved incidents
    header: dict | None = None  # the newest frame's boxes etc.
    uri: str | None = None
    jpeg: bytes | None = None  # read lazily, only while someone watches
    message: bytes | None = None  # the binary frame message, built once for every client
    frames: int = 0
    last_frame_wall_ms: int = 0
    pending: bool = False  # a newer frame than the last pushed one is waiting for its push slot
    tokens: float = 2.0  # push budget (a token bucket: `console_push_fps` per second, bursts of 2)
    last_push_wall: float = 0.0

    def summary(self) -> dict:
        return {"camera_id": self.camera_id, "geometry": self.geometry, "status": self.status,
                "moved": bool(self.moved_by), "frames": self.frames,
                "last_capture_ts_ms": (self.header or {}).get("capture_ts_ms"),
                "last_frame_wall_ms": self.last_frame_wall_ms or None}


def frame_header(batch: dict) -> dict:
    frame = batch["frame"]
    boxes = np.asarray(batch.get("xyxy") or [], np.float32).reshape(-1, 4)
    quality = frame.get("quality") or None
    return {"t": "frame", "camera_id": frame["camera_id"], "frame_id": frame["frame_id"],
            "capture_ts_ms": int(frame["capture_ts_ms"]), "inference_ts_ms": int(batch.get("inference_ts_ms") or 0),
            "width": int(frame["width"]), "height": int(frame["height"]),
            "boxes": np.round(boxes, 1).tolist(), "classes": [int(c) for c in batch.get("class_id") or []],
            "tracks": [int(t) for t in batch.get("track_id") or []],
            "scores": [round(float(c), 2) for c in batch.get("confidence") or []],
            "shift_px": None if not quality or quality.get("shift_px") is None else round(float(quality["shift_px"]), 1)}


def frame_message(header: dict, jpeg: bytes) -> bytes:
    data = json.dumps({**header, "pushed_ms": now_ms()}, separators=(",", ":")).encode()
    return struct.pack(">I", len(data)) + data + jpeg


def incident_event(record: dict) -> dict:
    keys = ("incident_id", "camera_id", "kind", "state", "severity", "zones", "track_ids", "opened_ms", "updated_ms",
            "cleared_ms", "revision", "score", "threshold", "detection_suspended")
    return {"t": "incident", **{k: record.get(k) for k in keys}}


def verdict_event(record: dict) -> dict:
    keys = ("incident_id", "camera_id", "kind", "verdict", "reason", "actor", "decided_ms", "verdict_id")
    return {"t": "verdict", **{k: record.get(k) for k in keys}}


class Client:
    """One open console: its WebSocket, the frame slots and the event queue."""

    def __init__(self, websocket: WebSocket, caller: Caller):
        self.websocket, self.caller = websocket, caller
        self.frames: dict[str, bytes] = {}
        self.events: deque[str] = deque(maxlen=20_000)
        self.wake = asyncio.Event()
        self.cameras: set[str] | None = None  # None: every camera
        self.want_frames = True
        self.in_flight = 0  # frames sent that the page has not acknowledged yet
        self.sent = self.dropped = 0

    def wants(self, camera_id: str) -> bool:
        return self.want_frames and (self.cameras is None or camera_id in self.cameras) and self.caller.sees(camera_id)

    def offer_frame(self, camera_id: str, message: bytes) -> None:
        if not self.wants(camera_id):
            return
        if camera_id in self.frames:
            self.dropped += 1
        self.frames[camera_id] = message
        self.wake.set()

    def offer_event(self, text: str) -> None:
        self.events.append(text)
        self.wake.set()


class LiveHub:
    def __init__(self, settings, geometry: dict[str, dict] | None = None, store=None, kafka: bool = True):
        self.settings = settings
        self.kafka = kafka
        self.store = store  # the frame store frames are read from
        self.cameras: dict[str, CameraState] = {}
        for camera_id, shapes in (geometry or {}).items():
            self.cameras[camera_id] = CameraState(camera_id, geometry=shapes)
        self.incidents: OrderedDict[str, dict] = OrderedDict()
        self.verdicts: dict[str, tuple[dict, float]] = {}
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.assigned = False
        self.consumer_error: str | None = None
        self.window = settings.console_window_frames
        self.counters = {"frames_in": 0, "statuses_in": 0, "incidents_in": 0, "verdicts_in": 0, "undecodable": 0,
                         "unreadable_frames": 0, "frames_pushed": 0}
        self.pushes: deque[tuple[float, int]] = deque(maxlen=4096)  # (monotonic, frames sent to clients)
        self.delays: deque[tuple[float, int, int]] = deque(maxlen=200_000)  # (monotonic, capture→drawn, pushed→drawn)

    # ---- life cycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        if self.kafka and self.thread is None:
            self.thread = threading.Thread(target=self._run, name="console-live", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        from vigil.avro_codec import AvroCodec, UndecodableMessage
        from vigil.kafka_io import make_consumer
        from vigil.topics import CAMERA_STATUS, DETECTIONS, INCIDENTS

        self._seed()
        codec = AvroCodec(self.settings.schema_registry_url)
        names = {t.deployed(self.settings): t for t in (DETECTIONS, CAMERA_STATUS, INCIDENTS)}
        group = f"{self.settings.console_consumer_group}-{uuid.uuid4().hex[:12]}"
        consumer = None
        while not self.stop_event.is_set():
            try:
                if consumer is None:
                    consumer = make_consumer(self.settings, group, list(names), **{"auto.offset.reset": "latest",
                                                                                   "fetch.wait.max.ms": FETCH_WAIT_MS})
                    consumer.subscribe(list(names), on_assign=self._on_assign)
                messages = consumer.consume(500, 0.05)
            except Exception as exc:  # noqa: BLE001 - broker down: retry, keep serving what we have
                self.consumer_error = str(exc)
                log.warning("live consumer: %s; retrying in 2 s", exc)
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # noqa: BLE001
                        pass
                consumer = None
                self.stop_event.wait(2)
                continue
            newest: dict[str, dict] = {}
            for message in messages:
                if message.error():
                    continue
                data = message.value()
                try:
                    record_type = codec.record_type(data)
                    record = codec.decode(data)
                except UndecodableMessage:
                    self.counters["undecodable"] += 1
                    continue
                if record_type == "DetectionBatch":
                    self.counters["frames_in"] += 1
                    camera_id = record["frame"]["camera_id"]
                    previous = newest.get(camera_id)
                    if previous is None or record["frame"]["capture_ts_ms"] >= previous["frame"]["capture_ts_ms"]:
                        newest[camera_id] = record
                else:
                    self.handle(record_type, record)
            for record in newest.values():
                self.handle("DetectionBatch", record)
            self.flush_frames()
        if consumer is not None:
            consumer.close()

    def _on_assign(self, consumer, partitions) -> None:
        self.assigned = True
        self.consumer_error = None

    def _seed(self) -> None:
        """Health badges and moved cameras as the store last saw them (once, at start-up)."""
        try:
            from vigil.store.client import connect

            client = connect(self.settings, read_only=True)
            rows = client.query(
                "SELECT camera_id, argMax(state, ts), toUnixTimestamp64Milli(max(ts)), argMax(actual_fps, ts), "
                "argMax(message, ts) FROM camera_status FINAL GROUP BY camera_id").result_rows
            for camera_id, state, ts_ms, fps, message in rows:
                self.handle("CameraStatus", {"camera_id": camera_id, "state": state, "ts_ms": int(ts_ms),
                                             "actual_fps": float(fps), "message": message}, push=False)
            moved = client.query("SELECT incident_id, camera_id FROM incidents_current WHERE kind IN {k:Array(String)} "
                                 "AND cleared IS NULL AND ifNull(verdict, '') != 'rejected'",
                                 parameters={"k": list(MOVED_KINDS)}).result_rows
            for incident_id, camera_id in moved:
                self._camera(camera_id).moved_by.add(incident_id)
        except Exception as exc:  # noqa: BLE001 - the store is down: badges come with the next statuses
            log.warning("could not read the last camera health from the store: %s", exc)

    # ---- state (called from the consumer thread; pure enough to test without Kafka)
    def _camera(self, camera_id: str) -> CameraState:
        camera = self.cameras.get(camera_id)
        if camera is None:
            with self.lock:
                camera = self.cameras.setdefault(camera_id, CameraState(camera_id))
            self._push_event({"t": "camera", **camera.summary()})
        return camera

    def handle(self, record_type: str, record: dict, push: bool = True) -> None:
        if record_type == "DetectionBatch":
            camera = self._camera(record["frame"]["camera_id"])
            header = frame_header(record)
            if camera.header and header["capture_ts_ms"] < camera.header["capture_ts_ms"]:
                return  # a replayed older frame
            camera.header, camera.uri, camera.jpeg, camera.message = header, record["frame"]["uri"], None, None
            camera.frames += 1
            camera.last_frame_wall_ms = now_ms()
            camera.pending = True
        elif record_type == "CameraStatus":
            self.counters["statuses_in"] += push
            camera = self._camera(record["camera_id"])
            if camera.status and record["ts_ms"] < camera.status["ts_ms"]:
                return
            camera.status = {k: record.get(k) for k in ("state", "ts_ms", "actual_fps", "message", "frames_published",
                                                        "decode_errors", "reconnects")}
            if push:
                self._push_event({"t": "status", "camera_id": camera.camera_id, "status": camera.status,
                                  "moved": bool(camera.moved_by)})
        elif record_type == "Incident":
            self.counters["incidents_in"] += 1
            incident_id = record["incident_id"]
            known = self.incidents.get(incident_id)
            if known and known["revision"] > record["revision"]:
                return
            with self.lock:
                self.incidents[incident_id] = record
                self.incidents.move_to_end(incident_id)
                while len(self.incidents) > KEEP_INCIDENTS:
                    self.incidents.popitem(last=False)
            if record["kind"] in MOVED_KINDS:
                self._set_moved(record["camera_id"], incident_id, record["state"] != "cleared")
            self._push_event(incident_event(record))
        elif record_type == "IncidentVerdict":
            self.counters["verdicts_in"] += 1
            known = self.verdicts.get(record["incident_id"])
            if known and known[0]["decided_ms"] > record["decided_ms"]:
                return
            with self.lock:
                self.verdicts[record["incident_id"]] = (record, time.time())
                horizon = time.time() - max(self.settings.console_verdict_overlay_s, 1.0) * 2
                if len(self.verdicts) > KEEP_INCIDENTS:
                    self.verdicts = {k: v for k, v in self.verdicts.items() if v[1] > horizon}
            if record["kind"] in MOVED_KINDS and record["verdict"] == "rejected":
                self._set_moved(record["camera_id"], record["incident_id"], False)
            self._push_event(verdict_event(record))

    def _set_moved(self, camera_id: str, incident_id: str, moved: bool) -> None:
        camera = self._camera(camera_id)
        before = bool(camera.moved_by)
        (camera.moved_by.add if moved else camera.moved_by.discard)(incident_id)
        if before != bool(camera.moved_by):
            self._push_event({"t": "status", "camera_id": camera_id, "status": camera.status,
                              "moved": bool(camera.moved_by)})

    def read_jpeg(self, uri: str) -> bytes | None:
        """A frame's JPEG, only from inside the configured frame store."""
        try:
            parsed = urlparse(uri)
            if parsed.scheme == "file":
                path = Path(unquote(parsed.path)).resolve()
                root = Path(unquote(urlparse(self.settings.frame_store_uri).path)).resolve()
                if not path.is_relative_to(root):
                    raise ValueError(f"{uri} is outside the frame store {root}")
                return path.read_bytes()
            return self.store.get(uri)
        except Exception as exc:  # noqa: BLE001 - gone (retention), unreadable: the tile keeps its last frame
            self.counters["unreadable_frames"] += 1
            log.debug("frame %s unreadable: %s", uri, exc)
            return None

    def message_of(self, camera: CameraState) -> bytes | None:
        if camera.message is None and camera.header is not None and camera.uri:
            jpeg = camera.jpeg or self.read_jpeg(camera.uri)
            if jpeg is None:
                return None
            camera.jpeg, camera.message = jpeg, frame_message(camera.header, jpeg)
        return camera.message

    def flush_frames(self) -> None:
        """Push each camera's newest frame to the consoles, at most `console_push_fps` per camera."""
        if not self.clients:
            for camera in list(self.cameras.values()):
                camera.pending = False
            return
        now = time.monotonic()
        rate = self.settings.console_push_fps
        for camera in list(self.cameras.values()):
            camera.tokens = min(PUSH_BURST, camera.tokens + (now - camera.last_push_wall) * rate)
            camera.last_push_wall = now
            if not camera.pending or camera.tokens < 1.0:
                continue
            message = self.message_of(camera)
            camera.pending = False
            if message is None:
                continue
            camera.tokens -= 1.0
            self._call(self._fanout_frame, camera.camera_id, message)

    # ---- to the event loop
    def _call(self, function, *args) -> None:
        if self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(function, *args)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                pass

    def _push_event(self, event: dict) -> None:
        if self.clients:
            self._call(self._fanout_event, event.get("camera_id"), json.dumps(event, separators=(",", ":"), default=str))

    def _fanout_event(self, camera_id: str | None, text: str) -> None:
        for client in list(self.clients):
            if camera_id is None or client.caller.sees(camera_id):  # a scoped caller hears of its cameras only
                client.offer_event(text)

    def _fanout_frame(self, camera_id: str, message: bytes) -> None:
        for client in list(self.clients):
            client.offer_frame(camera_id, message)

    # ---- per WebSocket
    def hello(self, caller: Caller) -> dict:
        return {"t": "hello", "user": caller.user.name, "role": caller.user.role,
                "credit": self.settings.console_credit, "server_ms": now_ms(),
                "cameras": [camera.summary() for camera in sorted(self.cameras.values(), key=lambda c: c.camera_id)
                            if caller.sees(camera.camera_id)]}

    async def serve(self, websocket: WebSocket, caller: Caller, still_valid) -> None:
        client = Client(websocket, caller)
        await websocket.send_text(json.dumps(self.hello(caller), default=str))
        self.clients.add(client)
        try:
            for camera in list(self.cameras.values()):  # the newest frame of every camera, at once
                if camera.header is not None:
                    message = await asyncio.to_thread(self.message_of, camera)
                    if message:
                        client.offer_frame(camera.camera_id, message)
            pump = asyncio.create_task(self._pump(client, still_valid))
            listen = asyncio.create_task(self._listen(client))
            done, pending = await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() and not isinstance(task.exception(), (WebSocketDisconnect, RuntimeError)):
                    log.warning("live connection of %s ended: %r", caller.user.name, task.exception())
        finally:
            self.clients.discard(client)

    async def _pump(self, client: Client, still_valid) -> None:
        websocket = client.websocket
        while True:
            try:
                await asyncio.wait_for(client.wake.wait(), timeout=5.0)
            except asyncio.TimeoutError:
                pass
            client.wake.clear()
            if not still_valid(client.caller):
                await websocket.close(code=4401, reason="session ended")
                return
            while client.events:
                await websocket.send_text(client.events.popleft())
            sent = 0
            # at most `window` frames unacknowledged: a page that draws slower than frames come gets the newest
            # frame of each camera when it is ready, instead of a backlog in the socket buffers
            while client.frames and client.in_flight < self.window:
                camera_id = next(iter(client.frames))
                message = client.frames.pop(camera_id)
                await websocket.send_bytes(message)
                client.in_flight += 1
                sent += 1
            if sent:
                client.sent += sent
                self.counters["frames_pushed"] += sent
                self.pushes.append((time.monotonic(), sent))

    async def _listen(self, client: Client) -> None:
        while True:
            text = await client.websocket.receive_text()
            try:
                message = json.loads(text)
            except ValueError:
                continue
            kind = message.get("t")
            if kind == "ack":  # frames the page has decoded (drawn, or replaced by a newer one of that camera)
                try:
                    client.in_flight = max(0, client.in_flight - int(message.get("n", 1)))
                except (TypeError, ValueError):
                    continue
                client.wake.set()
            elif kind == "drawn":
                now = time.monotonic()
                for sample in message.get("samples", [])[:1000]:
                    try:
                        capture_ms, pushed_ms, drawn_ms = (int(v) for v in sample[:3])
                    except (TypeError, ValueError):
                        continue
                    self.delays.append((now, drawn_ms - capture_ms, drawn_ms - pushed_ms))
            elif kind == "subscribe":
                cameras = message.get("cameras")
                client.cameras = None if cameras is None else {str(c) for c in cameras}
                client.want_frames = bool(message.get("frames", True))
                if client.want_frames:  # the newest frames of the cameras now in view
                    for camera in list(self.cameras.values()):
                        if client.wants(camera.camera_id) and camera.message:
                            client.offer_frame(camera.camera_id, camera.message)

    # ---- figures
    def stats(self, window_s: float = DELAY_WINDOW_S) -> dict:
        now = time.monotonic()
        recent = [d for d in self.delays if d[0] >= now - window_s]

        def pct(values, q):
            return None if not values else float(np.percentile(values, q))

        capture = [d[1] for d in recent]
        push = [d[2] for d in recent]
        sent_10s = sum(n for t, n in self.pushes if t >= now - 10)
        return {"assigned": self.assigned, "consumer_error": self.consumer_error, "clients": len(self.clients),
                "cameras": len(self.cameras), **self.counters,
                "frames_dropped": sum(c.dropped for c in self.clients),
                "frames_pushed_per_s_10s": round(sent_10s / 10.0, 2),
                "delay_window_s": window_s,
                "capture_to_tile_ms": {"n": len(capture), "p50": pct(capture, 50), "p95": pct(capture, 95),
                                       "p99": pct(capture, 99), "max": max(capture) if capture else None},
                "push_to_tile_ms": {"n": len(push), "p50": pct(push, 50), "p95": pct(push, 95), "p99": pct(push, 99)},
                "per_client": [{"user": c.caller.user.name, "sent": c.sent, "dropped": c.dropped,
                                "cameras": None if c.cameras is None else len(c.cameras)} for c in self.clients]}

    def recent_verdict(self, incident_id: str) -> dict | None:
        """A verdict seen on Kafka in the last `console_verdict_overlay_s` (the store may not have it yet)."""
        found = self.verdicts.get(incident_id)
        if found and time.time() - found[1] <= self.settings.console_verdict_overlay_s \
                and found[0]["decided_ms"] >= now_ms() - self.settings.console_verdict_overlay_s * 1000:
            return found[0]
        return None


@router.websocket("/ws")
async def live_socket(websocket: WebSocket):
    console = websocket.app.state.console
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin and urlparse(origin).netloc != host:  # a page of another site must not read the tiles
        await websocket.close(code=4403, reason="cross-origin")
        return
    token = bearer(websocket.headers.get("authorization"))  # programs; a browser has its session cookie

    def current() -> Caller | None:
        return caller_of_token(console, token) if token else caller_from(console, websocket.cookies.get(COOKIE))

    caller = current()
    if caller is None or not caller.user.may("viewer"):
        await websocket.close(code=4401, reason="sign in first")
        return
    await websocket.accept()

    def still_valid(previous: Caller) -> bool:
        now = current()
        return now is not None and now.user.may("viewer")

    try:
        await console.hub.serve(websocket, caller, still_valid)
    except WebSocketDisconnect:
        pass


@router.get("/stats", summary="Frames in and pushed, drops, capture → tile delay (admin)")
def live_stats(request: Request, window_s: float = Query(DELAY_WINDOW_S, gt=0, le=3600,
                                                         description="delays reported over the last this many seconds"),
               caller: Caller = Depends(require("admin"))):
    return request.app.state.console.hub.stats(window_s)
