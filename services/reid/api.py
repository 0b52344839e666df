"""The re-ID search API (FastAPI), reading ClickHouse through clickhouse-connect: "the grey car that left camera 3 —
where did it go next?"

    GET  /tracks/{camera_id}/{track_id}            one track's summary and global identity
    GET  /tracks/{camera_id}/{track_id}/similar    tracks ranked by appearance similarity (cosine), with camera and time
    POST /search/crop                              the same, for an uploaded image of the object (embedded via Triton)
    GET  /identities/{global_id}/trajectory        the cameras a global identity went through, in order, with transits
    GET  /transit                                  transit-time summary per camera pair, from the matches
    GET  /tracks/{camera_id}/{track_id}/crop       the track's best crop (JPEG) from the frame store

OpenAPI: /docs and /openapi.json. Run: `vigil reid-api --port 18080` (binds 127.0.0.1 unless --host says otherwise;
HTTPS with VIGIL_TLS_CERT_FILE and VIGIL_TLS_KEY_FILE).

Every route but /healthz needs an API token of role analyst or higher (`Authorization: Bearer <token>`, vigil/auth.py):
401 without one, 403 for a viewer's. A token scoped to cameras finds, follows and counts tracks of those cameras only;
a track of another camera answers 404. The store is read with readonly=1.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from functools import lru_cache

import cv2
import numpy as np
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from vigil import redact, tls
from vigil.auth import Principal, TokenStore, require_token
from vigil.config import Settings
from vigil.metrics import expose, forget_target_on_shutdown, instrument_app
from vigil.reid_embedding import crop_boxes


log = logging.getLogger("vigil.reid.api")


class ApiSettings(Settings):
    reid_model: str = Field("reid_learned", description="Triton embedder for crop search; must be the one infer uses.")
    reid_api_min_samples: int = Field(4, ge=1, description="Tracks embedded from fewer crops (glimpses, reflections at "
                                      "an exit) are fragments: left out of searches unless asked for, marked when "
                                      "shown. The re-ID job's own gate (min_samples) is the same 4.")


class Track(BaseModel):
    camera_id: str
    track_id: int
    class_id: int
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    detections: int
    entry_xy: tuple[float, float]
    exit_xy: tuple[float, float]
    global_id: str = Field(description="Global identity; '<camera>:<track>' of the earliest track in its chain.")
    embedder: str
    best_crop_uri: str | None
    embedding_samples: int = Field(description="Crops the track's mean embedding was built from.")
    reliable: bool = Field(description="False for a fragment (fewer crops than VIGIL_REID_API_MIN_SAMPLES): one or two "
                                       "crops embed to nearly the same vector whatever they show, so its similarities "
                                       "say little.")


class Hit(Track):
    similarity: float = Field(description="Cosine similarity of the mean appearance embeddings.")


class Step(Track):
    transit_s: float | None = Field(None, description="Seconds from leaving the previous camera to entering this one.")
    match_similarity: float | None = None


class Transit(BaseModel):
    from_camera_id: str
    to_camera_id: str
    matches: int
    transit_s_min: float
    transit_s_p50: float
    transit_s_p90: float
    transit_s_max: float
    mean_similarity: float


TRACK_COLUMNS = """s.camera_id, s.track_id, s.class_id, s.first_seen, s.last_seen, s.detections, s.entry_x, s.entry_y,
    s.exit_x, s.exit_y, if(i.global_id = '', concat(s.camera_id, ':', toString(s.track_id)), i.global_id) AS gid,
    s.embedder, s.best_crop_uri, s.embedding_samples"""
FROM_TRACKS = """FROM track_summaries AS s FINAL
    LEFT JOIN track_identities AS i ON s.camera_id = i.camera_id AND s.track_id = i.track_id"""


N_TRACK_COLUMNS = 14


def _track(row, min_samples: int) -> dict:
    return dict(camera_id=row[0], track_id=row[1], class_id=row[2], first_seen=row[3], last_seen=row[4], detections=row[5],
                entry_xy=(row[6], row[7]), exit_xy=(row[8], row[9]), global_id=row[10], embedder=row[11], best_crop_uri=row[12],
                embedding_samples=row[13], reliable=row[13] >= min_samples)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    app = FastAPI(title="Vigil re-identification API", version="1",
                  description="Search tracked objects across cameras by appearance, follow global identities and "
                              "read camera-pair transit times. Reads the ClickHouse tables the pipeline writes. "
                              "Needs an API token of role analyst or higher (`Authorization: Bearer <token>`); "
                              "a token scoped to cameras sees only theirs.")
    app.state.tokens = TokenStore.of(settings)
    instrument_app(app, "reid-api")

    @app.exception_handler(OperationalError)
    @app.exception_handler(ConnectionError)
    async def store_unavailable(request, exc):
        """ClickHouse down or unreachable: 503 with a reason, not a 500 (no DSN in it: it may hold a password)."""
        log.warning("the store does not answer: %s", type(exc).__name__)
        return JSONResponse({"detail": "the ClickHouse store does not answer; try again later"}, status_code=503)
    analyst = Depends(require_token("analyst", lambda request: request.app.state.tokens))

    @lru_cache(maxsize=1)
    def client():
        from vigil.store.client import connect

        return connect(settings, read_only=True)

    @lru_cache(maxsize=1)
    def embedder():
        from services.reid.embedder import TritonEmbedder

        return TritonEmbedder(settings.triton_url, settings.reid_model)

    def get_track(camera_id: str, track_id: int, caller: Principal) -> tuple[dict, list[float]]:
        rows = [] if not caller.sees(camera_id) else client().query(f"SELECT {TRACK_COLUMNS}, s.embedding {FROM_TRACKS} WHERE s.camera_id = {{c:String}} "
                              "AND s.track_id = {t:Int64}", parameters={"c": camera_id, "t": track_id}).result_rows
        if not rows:
            raise HTTPException(404, f"no track {track_id} on camera {camera_id!r} (summaries are written when a track "
                                     "ends, and every 30 s while it lasts)")
        return _track(rows[0], settings.reid_api_min_samples), list(rows[0][N_TRACK_COLUMNS])

    def ranked(vector: list[float], embedder_name: str, limit: int, class_id: int | None, exclude: tuple | None,
               other_cameras_of: str | None, since, cameras: list[str] | None, fragments: bool = False) -> list[Hit]:
        where = ["s.embedder = {e:String}", "length(s.embedding) = {n:UInt32}"]
        parameters: dict = {"e": embedder_name, "n": len(vector), "q": vector, "limit": limit}
        if not fragments:
            where.append("s.embedding_samples >= {ms:UInt32}")
            parameters["ms"] = settings.reid_api_min_samples
        if class_id is not None:
            where.append("s.class_id = {cls:UInt16}")
            parameters["cls"] = class_id
        if exclude:
            where.append("NOT (s.camera_id = {xc:String} AND s.track_id = {xt:Int64})")
            parameters |= {"xc": exclude[0], "xt": exclude[1]}
        if other_cameras_of:
            where.append("s.camera_id != {oc:String}")
            parameters["oc"] = other_cameras_of
        if since:
            where.append("s.last_seen >= {since:DateTime64(3)}")
            parameters["since"] = since
        if cameras is not None:
            if not cameras:
                return []  # none of the cameras asked for is the caller's
            where.append("s.camera_id IN {cams:Array(String)}")
            parameters["cams"] = cameras
        rows = client().query(
            f"SELECT {TRACK_COLUMNS}, 1 - cosineDistance(s.embedding, {{q:Array(Float32)}}) AS similarity {FROM_TRACKS} "
            f"WHERE {' AND '.join(where)} ORDER BY similarity DESC LIMIT {{limit:UInt32}}", parameters=parameters).result_rows
        return [Hit(**_track(row, settings.reid_api_min_samples), similarity=round(float(row[N_TRACK_COLUMNS]), 4))
                for row in rows]

    @app.get("/healthz", summary="Liveness: the store answers")
    def healthz():
        client().query("SELECT 1")
        return {"status": "ok"}

    @app.get("/tracks/{camera_id}/{track_id}", response_model=Track, summary="One track's summary and global identity")
    def track(camera_id: str, track_id: int, caller: Principal = analyst):
        return get_track(camera_id, track_id, caller)[0]

    @app.get("/tracks/{camera_id}/{track_id}/similar", response_model=list[Hit],
             summary="Tracks that look like this one, most similar first")
    def similar(camera_id: str, track_id: int, limit: int = Query(10, ge=1, le=200),
                same_class: bool = Query(True, description="only tracks of the same class"),
                other_cameras: bool = Query(True, description="only tracks on other cameras"),
                after: bool = Query(False, description="only tracks that started after this one ended (where did it go next?)"),
                cameras: list[str] | None = Query(None, description="only these cameras (repeat the parameter)"),
                fragments: bool = Query(False, description="also fragments (tracks embedded from too few crops), "
                                                           "marked reliable=false"), caller: Principal = analyst):
        found, vector = get_track(camera_id, track_id, caller)
        if not vector:
            raise HTTPException(409, f"track {track_id} on {camera_id!r} has no embedding (infer ran without an embedder)")
        if not found["reliable"] and not fragments:
            raise HTTPException(409, f"track {track_id} on {camera_id!r} is a fragment (embedded from "
                                     f"{found['embedding_samples']} crops, fewer than {settings.reid_api_min_samples}): "
                                     "its similarities say little; pass fragments=true to search anyway")
        return ranked(vector, found["embedder"], limit, found["class_id"] if same_class else None, (camera_id, track_id),
                      camera_id if other_cameras else None, found["last_seen"] if after else None,
                      caller.scope(cameras or None), fragments)

    @app.post("/search/crop", response_model=list[Hit], summary="Tracks that look like an uploaded image of the object")
    def search_crop(image: UploadFile = File(..., description="JPEG or PNG of the object, cropped to it"),
                    class_id: int | None = Form(None), limit: int = Form(10, ge=1, le=200),
                    cameras: str | None = Form(None, description="only these cameras, comma-separated"),
                    fragments: bool = Form(False, description="also fragments (too few crops), marked reliable=false"),
                    caller: Principal = analyst):
        data = image.file.read()
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if pixels is None:
            raise HTTPException(400, "the upload is not a decodable JPEG or PNG image")
        rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        crop = crop_boxes(rgb, np.array([[0, 0, rgb.shape[1], rgb.shape[0]]], np.float32), pad=0.0)
        try:
            model = embedder()
            vector = model.embed(crop)[0]
        except Exception as exc:  # noqa: BLE001 - Triton unreachable or the model not loaded
            embedder.cache_clear()
            raise HTTPException(503, f"embedder {settings.reid_model!r} unavailable at {settings.triton_url}: "
                                     f"{redact.redact(str(exc).splitlines()[0])}") from None
        wanted = [c for c in cameras.split(",") if c] if cameras else None
        return ranked([float(v) for v in vector], model.name, limit, class_id, None, None, None,
                      caller.scope(wanted or None), fragments)

    @app.get("/identities/{global_id}/trajectory", response_model=list[Step],
             summary="Every camera a global identity was seen on, in time order, with transit times")
    def trajectory(global_id: str, caller: Principal = analyst):
        rows = [row for row in client().query(f"SELECT {TRACK_COLUMNS} {FROM_TRACKS} WHERE gid = {{g:String}} "
                                              "ORDER BY s.first_seen", parameters={"g": global_id}).result_rows
                if caller.sees(row[0])]
        if not rows:
            raise HTTPException(404, f"no tracks with global id {global_id!r}")
        edges = {(r[0], r[1]): (r[2], r[3]) for r in client().query(
            "SELECT to_camera_id, to_track_id, transit_s, similarity FROM reid_matches FINAL WHERE global_id = {g:String}",
            parameters={"g": global_id}).result_rows}
        steps = []
        for row in rows:
            transit, similarity = edges.get((row[0], row[1]), (None, None))
            steps.append(Step(**_track(row, settings.reid_api_min_samples), transit_s=transit, match_similarity=similarity))
        return steps

    @app.get("/transit", response_model=list[Transit], summary="Transit times between camera pairs, from the matches")
    def transit(from_camera: str | None = None, to_camera: str | None = None, caller: Principal = analyst):
        where, parameters = [], {}
        if caller.cameras is not None:  # pairs of the caller's cameras only
            where.append("from_camera_id IN {scope:Array(String)} AND to_camera_id IN {scope:Array(String)}")
            parameters["scope"] = caller.scope()
        if from_camera:
            where.append("from_camera_id = {f:String}")
            parameters["f"] = from_camera
        if to_camera:
            where.append("to_camera_id = {t:String}")
            parameters["t"] = to_camera
        rows = client().query(
            "SELECT from_camera_id, to_camera_id, count(), min(transit_s), quantile(0.5)(transit_s), "
            "quantile(0.9)(transit_s), max(transit_s), avg(similarity) FROM reid_matches FINAL "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY from_camera_id, to_camera_id "
            "ORDER BY from_camera_id, to_camera_id", parameters=parameters).result_rows
        return [Transit(from_camera_id=r[0], to_camera_id=r[1], matches=r[2], transit_s_min=r[3], transit_s_p50=r[4],
                        transit_s_p90=r[5], transit_s_max=r[6], mean_similarity=round(float(r[7]), 4)) for r in rows]

    @app.get("/tracks/{camera_id}/{track_id}/crop", summary="The track's best crop (JPEG)",
             responses={200: {"content": {"image/jpeg": {}}}})
    def crop(camera_id: str, track_id: int, caller: Principal = analyst):
        from vigil.framestore import FrameNotFound, open_frame_store

        found, _ = get_track(camera_id, track_id, caller)
        if not found["best_crop_uri"]:
            raise HTTPException(404, "this track has no stored crop")
        try:
            return Response(open_frame_store(settings.frame_store_uri).get(found["best_crop_uri"]), media_type="image/jpeg")
        except FrameNotFound:
            raise HTTPException(410, "the crop was removed by frame-store retention") from None

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="vigil reid-api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install_log_redaction()
    settings = ApiSettings()
    try:
        https = tls.uvicorn_options(settings)
    except tls.TlsConfigError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    app = create_app(settings)
    if not len(app.state.tokens):
        logging.getLogger("vigil.reid.api").warning(
            "no API tokens in %s or VIGIL_API_TOKENS: every request will be refused; issue one with "
            "`vigil api-token add NAME --role analyst`", settings.tokens_path)
    try:
        registered = expose(settings, "reid-api")
        forget_target_on_shutdown(app, registered)
    except OSError as exc:
        print(f"error: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc}", flush=True)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", **https)
    return 0
