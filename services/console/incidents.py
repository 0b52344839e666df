"""The incident queue, an incident's page (history, verdicts, the involved tracks, the evidence files) and the
operators' actions (`/api/incidents`).

The queue and history come from ClickHouse (`incidents_current`, with `vigil.incidents.queue`; `NOISIEST` for the
rejections per rule, zone and camera). An action is an IncidentVerdict built by `vigil.incidents.verdict_record`
(the actor is the signed-in user, never a field of the request) and published on `incidents.v1` by
`publish_verdict`; the sink stores it in `incident_verdicts`, and the console's live consumer pushes it to every open
console. Until the sink has stored it, verdicts the live consumer saw in the last `VIGIL_CONSOLE_VERDICT_OVERLAY_S`
take precedence over the store's answer, and incidents it saw but the store has not yet are served from memory.

Evidence (the snapshot and the clip) is served from the URIs on the incident record only, never from a path the
client names; clips answer HTTP range requests, so the video element can seek.

A caller scoped to cameras (an API token with `cameras`) gets the queue, filters and noisiest rules of those cameras
only; any other camera's incident, tracks, snapshot and clip answer 404, as if they did not exist.
"""

from __future__ import annotations

import datetime
import logging
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from services.console.audit import insert_clip_view, record_clip_view
from services.console.auth import Caller, require
from services.console.live import verdict_event
from vigil.incidents import NOISIEST, VERDICTS, IncidentError, publish_verdict, queue, verdict_record
from vigil.redact import redact

log = logging.getLogger("vigil.console.incidents")
router = APIRouter(prefix="/api/incidents", tags=["incidents"])
STATES = ("open", "updated", "cleared")


def epoch_ms(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp() * 1000)


class IncidentRow(BaseModel):
    incident_id: str
    camera_id: str
    kind: str
    state: str
    severity: str
    verdict: str = Field("", description="'', 'acknowledged', 'confirmed' or 'rejected'")
    zones: list[str]
    track_ids: list[int]
    opened_ms: int
    cleared_ms: int | None
    revision: int


class Incident(IncidentRow):
    updated_ms: int | None = None
    score: float | None = None
    threshold: float | None = None
    detection_suspended: bool = False
    verdict_reason: str | None = None
    verdict_actor: str | None = None
    verdict_decided_ms: int | None = None
    has_snapshot: bool = False
    has_clip: bool = False
    snapshot_url: str
    clip_url: str
    revisions: list[dict] = Field(default_factory=list, description="Every revision: state, severity, times.")
    verdicts: list[dict] = Field(default_factory=list, description="Every verdict, newest first.")


class VerdictIn(BaseModel):
    verdict: str = Field(description=f"one of {', '.join(VERDICTS)}")
    reason: str | None = Field(None, max_length=500, description="why; required to reject")


class Noisy(BaseModel):
    kind: str
    camera_id: str
    zone: str
    rejected: int
    reasons: list[str]


class ClickHouseIncidents:
    """The console's reads of the store, one clickhouse-connect client per thread (the server threads query at
    once)."""

    def __init__(self, settings, cameras: list[str] | None = None):
        """`cameras`: the console's scope (its camera file's cameras); None = every camera in the store."""
        self.settings, self.cameras = settings, cameras
        self._local = threading.local()

    def client(self):
        if getattr(self._local, "client", None) is None:
            from vigil.store.client import connect

            self._local.client = connect(self.settings, read_only=True, autogenerate_session_id=False)
        return self._local.client

    def _rows(self, result) -> list[dict]:
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    def queue(self, camera=None, kind=None, state=None, limit=100, cameras: list[str] | None = None) -> list[dict]:
        """`cameras`: only these (a scoped caller's), within the console's own scope."""
        scope = self.cameras if cameras is None else [c for c in cameras if self.cameras is None or c in self.cameras]
        return self._rows(queue(self.client(), camera, kind, state, limit, scope))

    def filters(self) -> dict:
        scope = "" if self.cameras is None else " WHERE camera_id IN {scope:Array(String)}"
        rows = self.client().query("SELECT groupUniqArray(camera_id), groupUniqArray(kind) FROM incidents" + scope,
                                   parameters={} if self.cameras is None else {"scope": self.cameras}).result_rows
        cameras, kinds = rows[0] if rows else ([], [])
        return {"cameras": sorted(cameras), "kinds": sorted(kinds), "states": list(STATES)}

    def incident(self, incident_id: str) -> dict | None:
        rows = self._rows(self.client().query(
            "SELECT *, ifNull(verdict, '') AS verdict FROM incidents_current WHERE incident_id = {id:String}",
            parameters={"id": incident_id}))
        if not rows or (self.cameras is not None and rows[0]["camera_id"] not in self.cameras):
            return None  # another console's camera: as if it did not exist
        found = rows[0]
        found["revisions"] = self._rows(self.client().query(
            "SELECT revision, state, severity, toUnixTimestamp64Milli(updated) AS updated_ms, "
            "toUnixTimestamp64Milli(emitted_ts) AS emitted_ms, zones, track_ids, score FROM incidents FINAL "
            "WHERE incident_id = {id:String} ORDER BY revision", parameters={"id": incident_id}))
        found["verdicts"] = self._rows(self.client().query(
            "SELECT verdict, reason, actor, toUnixTimestamp64Milli(decided) AS decided_ms FROM incident_verdicts FINAL "
            "WHERE incident_id = {id:String} ORDER BY decided DESC", parameters={"id": incident_id}))
        return found

    def noisiest(self) -> list[dict]:
        return self._rows(self.client().query(NOISIEST))

    def tracks(self, camera_id: str, track_ids: list[int], from_ms: int, to_ms: int) -> list[dict]:
        if not track_ids:
            return []
        result = self.client().query(
            "SELECT toUnixTimestamp64Milli(capture_ts) AS ts, track_id[i] AS tid, class_id[i] AS cls, "
            "x1[i] AS a, y1[i] AS b, x2[i] AS c, y2[i] AS d FROM detections FINAL ARRAY JOIN arrayEnumerate(track_id) AS i "
            "WHERE camera_id = {c:String} AND capture_ts BETWEEN fromUnixTimestamp64Milli({f:Int64}) "
            "AND fromUnixTimestamp64Milli({t:Int64}) AND tid IN {ids:Array(Int64)} ORDER BY ts LIMIT 20000",
            parameters={"c": camera_id, "f": int(from_ms), "t": int(to_ms), "ids": [int(t) for t in track_ids]})
        by_track: dict[int, dict] = {}
        for ts, tid, cls, x1, y1, x2, y2 in result.result_rows:
            track = by_track.setdefault(int(tid), {"track_id": int(tid), "class_id": int(cls), "points": []})
            track["points"].append([int(ts), round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)])
        return list(by_track.values())

    def first_frame_ms(self, camera_id: str, from_ms: int, to_ms: int) -> int | None:
        """Capture time of the camera's first stored frame in [from_ms, to_ms]: where the clip starts."""
        rows = self.client().query(
            "SELECT toUnixTimestamp64Milli(min(capture_ts)), count() FROM frames WHERE camera_id = {c:String} AND "
            "capture_ts BETWEEN fromUnixTimestamp64Milli({f:Int64}) AND fromUnixTimestamp64Milli({t:Int64})",
            parameters={"c": camera_id, "f": int(from_ms), "t": int(to_ms)}).result_rows
        return int(rows[0][0]) if rows and rows[0][1] else None

    def record_clip_view(self, view: dict) -> None:
        """Audit one served clip in clip_views (services/console/audit.py); raises when the row cannot be written."""
        insert_clip_view(self.settings, view)

    def frame_size(self, camera_id: str, around_ms: int) -> tuple[int, int] | None:
        rows = self.client().query(
            "SELECT width, height FROM frames WHERE camera_id = {c:String} ORDER BY abs(toUnixTimestamp64Milli(capture_ts) "
            "- {t:Int64}) LIMIT 1", parameters={"c": camera_id, "t": int(around_ms)}).result_rows
        return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _row(found: dict, overlay: dict | None) -> dict:
    row = {"incident_id": found["incident_id"], "camera_id": found["camera_id"], "kind": found["kind"],
           "state": found["state"], "severity": found["severity"], "verdict": found.get("verdict") or "",
           "zones": list(found.get("zones") or []), "track_ids": [int(t) for t in found.get("track_ids") or []],
           "opened_ms": epoch_ms(found.get("opened") if "opened" in found else found.get("opened_ms")),
           "cleared_ms": epoch_ms(found.get("cleared") if "cleared" in found else found.get("cleared_ms")),
           "revision": int(found["revision"])}
    if overlay is not None:
        row["verdict"] = overlay["verdict"]
    return row


def _from_memory(record: dict) -> dict:
    """An incident the live consumer saw, shaped like a store row."""
    return {**record, "opened": record["opened_ms"], "cleared": record.get("cleared_ms"),
            "updated": record.get("updated_ms"), "verdict": "", "revisions": [], "verdicts": []}


def _store(request: Request):
    return request.app.state.console.incidents


def _unavailable(exc: Exception) -> HTTPException:
    log.warning("store query failed: %s", exc)
    return HTTPException(503, f"the incident store is unavailable: {redact(str(exc).splitlines()[0])[:200]}")


def lookup(request: Request, incident_id: str, caller: Caller) -> dict:
    """The incident, from the store or (not yet stored) from the live consumer; 404 when it does not exist or its
    camera is outside the caller's scope."""
    found = _lookup(request, incident_id)
    if not caller.sees(found["camera_id"]):
        raise HTTPException(404, f"no incident {incident_id!r}")
    return found


def _lookup(request: Request, incident_id: str) -> dict:
    console = request.app.state.console
    try:
        found = console.incidents.incident(incident_id)
    except Exception as exc:  # noqa: BLE001
        found = None
        error = exc
    else:
        error = None
    if found is None:
        record = console.hub.incidents.get(incident_id)
        if record is not None:
            return _from_memory(record)
        if error is not None:
            raise _unavailable(error)
        raise HTTPException(404, f"no incident {incident_id!r}")
    return found


@router.get("", response_model=list[IncidentRow], summary="The queue: open first, most severe first, newest first")
def list_incidents(request: Request, camera: str | None = None, kind: str | None = None,
                   state: str | None = Query(None, description=", ".join(STATES)),
                   limit: int = Query(100, ge=1, le=1000), caller: Caller = Depends(require("viewer"))):
    if state and state not in STATES:
        raise HTTPException(400, f"state is one of {', '.join(STATES)}")  # 422 is schema validation's (a list)
    hub = request.app.state.console.hub
    if camera and not caller.sees(camera):
        raise HTTPException(403, f"{caller.user.name} may see only cameras {', '.join(caller.scope())}, not {camera!r}")
    try:
        scoped = {} if caller.cameras is None else {"cameras": caller.scope()}
        rows = _store(request).queue(camera, kind, state, limit, **scoped)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from None
    return [_row(found, hub.recent_verdict(found["incident_id"])) for found in rows]


@router.get("/filters", summary="Cameras, kinds and states the queue can be filtered by")
def filters(request: Request, caller: Caller = Depends(require("viewer"))):
    try:
        found = _store(request).filters()
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from None
    return {**found, "cameras": [c for c in found["cameras"] if caller.sees(c)]}


@router.get("/noisiest", response_model=list[Noisy], summary="Rejected incidents per rule, camera and zone")
def noisiest(request: Request, caller: Caller = Depends(require("viewer"))):
    try:
        rows = _store(request).noisiest()
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from None
    return [Noisy(kind=r["kind"], camera_id=r["camera_id"], zone=r["zone"], rejected=int(r["rejected"]),
                  reasons=sorted(x for x in r["reasons"] if x)) for r in rows if caller.sees(r["camera_id"])]


def _evidence_ready(request: Request, uri: str) -> bool:
    try:
        return bool(uri) and evidence_source(request, uri) is not None
    except HTTPException:
        return False


@router.get("/{incident_id}", response_model=Incident, summary="One incident: state, verdicts, history")
def get_incident(incident_id: str, request: Request, caller: Caller = Depends(require("viewer"))):
    found = lookup(request, incident_id, caller)
    overlay = request.app.state.console.hub.recent_verdict(incident_id)
    row = _row(found, overlay)
    base = f"/api/incidents/{incident_id}"
    return Incident(**row, updated_ms=epoch_ms(found.get("updated")), score=found.get("score"),
                    threshold=found.get("threshold"), detection_suspended=bool(found.get("detection_suspended")),
                    verdict_reason=(overlay or {}).get("reason", found.get("verdict_reason")),
                    verdict_actor=(overlay or {}).get("actor", found.get("verdict_actor")),
                    verdict_decided_ms=(overlay or {}).get("decided_ms") or epoch_ms(found.get("verdict_decided")),
                    has_snapshot=_evidence_ready(request, found.get("snapshot_uri", "")),
                    has_clip=_evidence_ready(request, found.get("clip_uri", "")),
                    snapshot_url=f"{base}/snapshot", clip_url=f"{base}/clip",
                    revisions=found.get("revisions", []), verdicts=found.get("verdicts", []))


@router.get("/{incident_id}/tracks", summary="The involved tracks' boxes over the incident (and pre/post-roll)")
def incident_tracks(incident_id: str, request: Request, caller: Caller = Depends(require("viewer"))):
    console = request.app.state.console
    found = lookup(request, incident_id, caller)
    pad_ms = int(console.settings.console_track_pad_s * 1000)
    opened = epoch_ms(found.get("opened"))
    until = epoch_ms(found.get("cleared")) or epoch_ms(found.get("updated")) or opened
    until = min(until, opened + 10 * 60_000)
    try:
        tracks = console.incidents.tracks(found["camera_id"], list(found.get("track_ids") or []), opened - pad_ms,
                                          until + pad_ms)
        size = console.incidents.frame_size(found["camera_id"], opened)
        clip_start = console.incidents.first_frame_ms(found["camera_id"], opened - pad_ms, opened + pad_ms)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from None
    return {"incident_id": incident_id, "from_ms": opened - pad_ms, "to_ms": until + pad_ms, "opened_ms": opened,
            "frame_size": size, "tracks": tracks,
            "clip_start_ms": clip_start if clip_start is not None else opened - pad_ms}


@router.post("/{incident_id}/verdict", summary="Acknowledge, confirm or reject (with a reason) — operators")
def post_verdict(incident_id: str, body: VerdictIn, request: Request, caller: Caller = Depends(require("operator"))):
    console = request.app.state.console
    found = lookup(request, incident_id, caller)
    try:
        record = verdict_record({"incident_id": incident_id, "camera_id": found["camera_id"], "kind": found["kind"],
                                 "zones": list(found.get("zones") or [])}, body.verdict, caller.user.name,
                                (body.reason or "").strip() or None)
    except IncidentError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        console.publish(record)
    except Exception as exc:  # noqa: BLE001 - broker down: the operator must know it was not recorded
        log.error("verdict on %s by %s not published: %s", incident_id, caller.user.name, exc)
        raise HTTPException(503, "the verdict was not recorded (the broker did not acknowledge it): "
                                 f"{redact(str(exc))[:300]}") from None
    log.info("%s %s %s%s", caller.user.name, body.verdict, incident_id, f" ({record['reason']})" if record["reason"] else "")
    return verdict_event(record)  # every console (this one too) gets it from incidents.v1


# ---- evidence files
def evidence_source(request: Request, uri: str):
    """('file', Path) or ('s3', (store, key, size)) of an evidence object of the configured store; None while it is
    not written yet. Refuses URIs outside the store."""
    from vigil.framestore import open_frame_store

    console = request.app.state.console
    parsed = urlparse(uri)
    store_uri = console.settings.frame_store_uri
    if parsed.scheme == "file":
        root = Path(unquote(urlparse(store_uri).path)).resolve()
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(root):
            raise HTTPException(403, "evidence outside the frame store")
        return ("file", path) if path.is_file() else None
    if parsed.scheme == "s3":
        store = console.s3_store or open_frame_store(store_uri)
        console.s3_store = store
        key = store._object_key(uri)
        try:
            head = store.s3.head_object(Bucket=store.bucket, Key=key)
        except Exception:  # noqa: BLE001 - not there (yet)
            return None
        return ("s3", (store, key, int(head["ContentLength"])))
    raise HTTPException(500, f"unsupported evidence URI scheme {parsed.scheme!r}")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), (int(last) if last else size - 1)
    if start > end or start >= size:
        raise HTTPException(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size - 1)


def serve_evidence(request: Request, uri: str, media_type: str, what: str, range_header: str | None) -> Response:
    source = evidence_source(request, uri) if uri else None
    if source is None:
        raise HTTPException(404, f"the {what} is not written yet (the evidence service writes it once the "
                                 "post-roll was recorded)")
    kind, where = source
    headers = {"Cache-Control": "private, max-age=60"}
    if kind == "file":
        return FileResponse(where, media_type=media_type, headers=headers)  # answers range requests itself
    store, key, size = where
    wanted = _parse_range(range_header, size) if range_header else None
    if wanted is None:
        body = store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        return Response(body, media_type=media_type, headers={**headers, "Accept-Ranges": "bytes"})
    start, end = wanted
    body = store.s3.get_object(Bucket=store.bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read()
    return Response(body, status_code=206, media_type=media_type,
                    headers={**headers, "Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{size}"})


@router.get("/{incident_id}/snapshot", summary="The snapshot (JPEG, the involved boxes drawn)",
            responses={200: {"content": {"image/jpeg": {}}}})
def snapshot(incident_id: str, request: Request, range: str | None = Header(None),
             caller: Caller = Depends(require("viewer"))):
    return serve_evidence(request, lookup(request, incident_id, caller).get("snapshot_uri", ""), "image/jpeg", "snapshot",
                          range)


@router.get("/{incident_id}/clip", summary="The clip (H.264 MP4 with pre- and post-roll; range requests)",
            responses={200: {"content": {"video/mp4": {}}}, 206: {"content": {"video/mp4": {}}}})
def clip(incident_id: str, request: Request, range: str | None = Header(None),
         caller: Caller = Depends(require("viewer"))):
    found = lookup(request, incident_id, caller)
    response = serve_evidence(request, found.get("clip_uri", ""), "video/mp4", "clip", range)
    record_clip_view(request, caller, found, range)  # before any byte goes out; 503 when it cannot be recorded
    return response
