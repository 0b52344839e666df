"""Cameras (`/api/cameras`): every camera the console knows (from the camera file and from Kafka) with its zones and
lanes, health, whether its view moved, and its newest frame. The tiles get frames pushed over `/api/live/ws`; the
frame endpoint serves the newest one for a page that just opened, a script or curl. A caller scoped to cameras (an
API token with `cameras`) sees only those; any other answers 404."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from services.console.auth import Caller, require

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def geometry_of(camera) -> dict:
    """What a tile draws of a camera from the camera file: zones (anomaly rules) and the traffic geometry."""
    shapes = {"zones": [{"name": z.name, "kind": z.kind, "polygon": [list(p) for p in z.polygon],
                         "direction": list(z.direction) if z.direction else None} for z in camera.zones],
              "lanes": [], "count_lines": [], "detection_zones": []}
    if camera.traffic is not None:
        shapes["lanes"] = [{"name": lane.name, "number": lane.number, "polygon": [list(p) for p in lane.polygon],
                            "direction": list(lane.direction)} for lane in camera.traffic.lanes]
        shapes["count_lines"] = [{"name": line.name, "start": list(line.start), "end": list(line.end)}
                                 for line in camera.traffic.count_lines]
        shapes["detection_zones"] = [{"name": zone.name, "polygon": [list(p) for p in zone.polygon]}
                                     for zone in camera.traffic.detection_zones]
    return shapes


@router.get("", summary="Every camera: zones and lanes, health, moved, newest frame time")
def list_cameras(request: Request, caller: Caller = Depends(require("viewer"))):
    hub = request.app.state.console.hub
    return [camera.summary() for camera in sorted(hub.cameras.values(), key=lambda c: c.camera_id)
            if caller.sees(camera.camera_id)]


@router.get("/{camera_id}", summary="One camera")
def get_camera(camera_id: str, request: Request, caller: Caller = Depends(require("viewer"))):
    camera = request.app.state.console.hub.cameras.get(camera_id)
    if camera is None or not caller.sees(camera_id):
        raise HTTPException(404, f"no camera {camera_id!r} (not in the camera file and not seen on Kafka)")
    return {**camera.summary(), "frame": camera.header}


@router.get("/{camera_id}/frame.jpg", summary="The camera's newest frame (JPEG, without boxes)",
            responses={200: {"content": {"image/jpeg": {}}}})
def newest_frame(camera_id: str, request: Request, caller: Caller = Depends(require("viewer"))):
    hub = request.app.state.console.hub
    camera = hub.cameras.get(camera_id) if caller.sees(camera_id) else None
    if camera is None or camera.uri is None:
        raise HTTPException(404, f"no frame of {camera_id!r} yet")
    jpeg = camera.jpeg or hub.read_jpeg(camera.uri)
    if jpeg is None:
        raise HTTPException(410, "the newest frame is no longer in the frame store")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store",
                                                            "X-Capture-Ts-Ms": str(camera.header["capture_ts_ms"])})
