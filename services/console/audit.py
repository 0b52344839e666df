"""The audit of clip views: who viewed which incident clip, when and from where, one row per served clip request in
ClickHouse's `clip_views` (migration 0007). The clip route records the view before it sends the bytes, and refuses
the clip (503) when the row cannot be written: an unaudited view is not served."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from fastapi import HTTPException, Request

log = logging.getLogger("vigil.console.audit")
COLUMNS = ("view_id", "viewed", "actor", "role", "incident_id", "camera_id", "clip_uri", "range", "client_address")
_local = threading.local()


def view_record(actor: str, role: str, incident: dict, range_header: str | None, client_address: str) -> dict:
    return {"view_id": uuid.uuid4().hex, "viewed_ms": int(time.time() * 1000), "actor": actor, "role": role,
            "incident_id": incident["incident_id"], "camera_id": incident.get("camera_id", ""),
            "clip_uri": incident.get("clip_uri", ""), "range": range_header or "", "client_address": client_address}


def insert_clip_view(settings, view: dict) -> None:
    """Write one view to `clip_views` (a writable client per server thread); raises when it cannot."""
    from datetime import datetime, timezone

    from vigil.store.client import connect

    if getattr(_local, "client", None) is None:
        _local.client = connect(settings, autogenerate_session_id=False)
    row = [view["view_id"], datetime.fromtimestamp(view["viewed_ms"] / 1000, timezone.utc), *(
        view[column] for column in COLUMNS[2:])]
    _local.client.insert("clip_views", [row], column_names=list(COLUMNS))


def record_clip_view(request: Request, caller, incident: dict, range_header: str | None) -> None:
    """Audit the clip the caller is about to receive, through the console's incident store; 503 when it cannot."""
    console = request.app.state.console
    view = view_record(caller.user.name, caller.user.role, incident, range_header,
                       request.client.host if request.client else "")
    try:
        console.incidents.record_clip_view(view)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the view is not on record
        log.error("clip of %s for %s not served: the view could not be audited: %s", incident["incident_id"],
                  caller.user.name, exc)
        raise HTTPException(503, "the clip is not served: its viewing could not be recorded in the audit "
                                 "(clip_views); try again") from None
