"""The operator console (FastAPI): live tiles of every camera, the incident queue, incident pages with snapshot, clip
and tracks, and the operators' actions; sign-in with roles. `vigil console`, `python -m services.console`.

    /                       the console (plain HTML and JavaScript from services/console/static; no CDN)
    /login                  sign-in page
    /api/auth/...           sign in / out, who am I (auth.py)
    /api/users              users and roles, for admins (auth.py)
    /api/cameras/...        cameras with zones, lanes, health, newest frame (cameras.py)
    /api/incidents/...      queue, filters, noisiest rules, an incident, its tracks, snapshot, clip; verdicts (incidents.py)
    /api/live/ws            the WebSocket the tiles and state changes are pushed over; /api/live/stats (live.py)
    /docs, /openapi.json    OpenAPI (Swagger UI served from this machine, installed by set-up from npm)
    /healthz                liveness and the live consumer's state

Settings: `services/console/settings.py` (`VIGIL_CONSOLE_*`); users: `vigil console-user add NAME --role operator`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.console import auth, cameras, incidents, live
from services.console.sessions import LoginThrottle, SessionSigner
from services.console.settings import ConsoleSettings
from services.console.users import UserStore
from vigil import redact, tls
from vigil.auth import TokenStore
from vigil.metrics import StatsCollector, expose, forget_target_on_shutdown, instrument_app

log = logging.getLogger("vigil.console")
STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
       "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@dataclass
class Console:
    """Everything the routers share (`request.app.state.console`)."""

    settings: ConsoleSettings
    users: UserStore
    signer: SessionSigner
    throttle: LoginThrottle
    hub: live.LiveHub
    incidents: object  # ClickHouseIncidents or a stand-in with the same methods
    publish: Callable[[dict], None]
    s3_store: object = None
    tokens: TokenStore | None = None  # the API tokens (vigil/auth.py) programs call the console API with
    extra: dict = field(default_factory=dict)


def camera_geometry(settings: ConsoleSettings) -> dict[str, dict]:
    if not settings.console_cameras:
        return {}
    from vigil.cameras import load_cameras

    return {camera.id: cameras.geometry_of(camera) for camera in load_cameras(settings.console_cameras).cameras}


def create_app(settings: ConsoleSettings | None = None, incident_store=None, publish=None, kafka: bool = True) -> FastAPI:
    """The console app. `incident_store` and `publish` replace the ClickHouse reads and the Kafka publishing (tests);
    `kafka=False` runs it without the live consumer."""
    from vigil.incidents import publish_verdict

    settings = settings or ConsoleSettings()
    store = None
    if not settings.frame_store_uri.startswith("file:"):
        from vigil.framestore import open_frame_store

        store = open_frame_store(settings.frame_store_uri)
    geometry = camera_geometry(settings)
    hub = live.LiveHub(settings, geometry, store=store, kafka=kafka)
    console = Console(settings=settings, users=UserStore(settings.users_path),
                      signer=SessionSigner(settings.secret_key(), settings.console_session_ttl_s),
                      throttle=LoginThrottle(settings.console_login_max_failures, settings.console_login_lockout_s),
                      hub=hub, incidents=incident_store or incidents.ClickHouseIncidents(
                          settings, sorted(geometry) if settings.console_cameras else None),
                      publish=publish or (lambda record: publish_verdict(settings, record)), s3_store=store,
                      tokens=TokenStore.of(settings))

    collector = StatsCollector("vigil_console", "The console's live feed",
                               lambda: {**hub.counters, "clients": len(hub.clients), "cameras": len(hub.cameras)},
                               counters=tuple(hub.counters), gauges=("clients", "cameras"))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.start(asyncio.get_running_loop())
        collector.register()
        try:
            yield
        finally:
            collector.unregister()
            hub.stop()

    app = FastAPI(title="Vigil operator console", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Live camera tiles, the incident queue and operators' verdicts. Sign in with "
                              "POST /api/auth/login; the session is a cookie; send the CSRF token from "
                              "GET /api/auth/me as X-CSRF-Token with every POST and DELETE. Programs send an API "
                              "token instead (`Authorization: Bearer <token>`, `vigil api-token add`; no CSRF "
                              "token); a token scoped to cameras sees only theirs. Roles: viewer (sees), analyst "
                              "(the same here), operator (also acknowledges, confirms, rejects), admin (also "
                              "manages users).")
    app.state.console = console
    instrument_app(app, "console")
    for router in (auth.router, auth.users_router, cameras.router, incidents.router, live.router):
        app.include_router(router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/docs"):  # Swagger UI's page starts itself with an inline script
            response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    swagger = settings.console_assets_dir / "swagger-ui-dist"
    if (swagger / "swagger-ui-bundle.js").is_file():
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/login", include_in_schema=False)
    def login_page():
        return FileResponse(STATIC / "login.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return RedirectResponse("/static/favicon.svg")

    @app.get("/docs", include_in_schema=False)
    def docs():
        if not (swagger / "swagger-ui-bundle.js").is_file():
            return HTMLResponse("<!doctype html><title>Vigil console API</title><p>Swagger UI is not installed here "
                                "(<code>make setup</code> installs it from npm into .deps/console-ui). The OpenAPI "
                                "document is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Vigil operator console — API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")

    @app.get("/healthz", summary="Liveness, and whether the live consumer has its partitions", tags=["health"])
    def healthz():
        return {"status": "ok", "live_consumer": {"enabled": kafka, "assigned": hub.assigned,
                                                  "error": hub.consumer_error}, "cameras": len(hub.cameras),
                "clients": len(hub.clients)}

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="vigil console", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", help="address to bind (VIGIL_CONSOLE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (VIGIL_CONSOLE_PORT, default 18090)")
    parser.add_argument("--cameras", type=Path, help="camera file whose zones and lanes the tiles draw "
                        "(VIGIL_CONSOLE_CAMERAS)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("console_host", args.host), ("console_port", args.port),
                                   ("console_cameras", args.cameras)) if v is not None}
    settings = ConsoleSettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install_log_redaction()
    redact.register(settings.console_secret_key)
    try:
        https = tls.uvicorn_options(settings)
    except tls.TlsConfigError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    if https and not settings.console_cookie_secure:
        settings = settings.model_copy(update={"console_cookie_secure": True})  # served over HTTPS: Secure cookie
    users = UserStore(settings.users_path).list()
    if not users:
        log.warning("no console users in %s: add one with `vigil console-user add NAME --role operator`",
                    settings.users_path)
    from vigil.cameras import CameraConfigError

    try:
        app = create_app(settings)
    except (CameraConfigError, ValueError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    try:
        registered = expose(settings, "console")
        forget_target_on_shutdown(app, registered)
    except OSError as exc:
        print(f"error: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc}", flush=True)
        return 2
    print(f"Vigil console on {tls.scheme(settings)}://{settings.console_host}:{settings.console_port}/ "
          f"({len(users)} users in {settings.users_path}, {len(app.state.console.tokens)} API tokens)", flush=True)
    uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_level="info",
                ws="websockets-sansio", ws_max_size=1 << 20, **https)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
