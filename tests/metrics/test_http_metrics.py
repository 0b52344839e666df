"""The console and the re-ID API are measured like the streaming services: every request counted and timed by its
route template and status (`vigil_http_requests_total`, `vigil_http_request_seconds`), the console's live feed as
`vigil_console_*`, and both served on VIGIL_METRICS_PORT with a target file for the embedded Prometheus."""

from __future__ import annotations

import json
import urllib.request

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.stack.process import free_port
from services.console.app import create_app
from tests.console.helpers import PASSWORDS, MemoryIncidents, add_users, console_settings, incident_row
from vigil import metrics


def requests_of(service, route, method, status) -> float:
    return REGISTRY.get_sample_value("vigil_http_requests_total", {"service": service, "route": route,
                                                                   "method": method, "status": status}) or 0.0


def test_console_requests_are_counted_by_route_and_status_and_its_feed_is_reported(tmp_path):
    settings = console_settings(tmp_path)
    add_users(settings)
    app = create_app(settings, incident_store=MemoryIncidents([incident_row()]), publish=lambda r: None, kafka=False)
    route = "/api/incidents/{incident_id}"
    refused, found = requests_of("console", route, "GET", "401"), requests_of("console", route, "GET", "200")
    timed = REGISTRY.get_sample_value("vigil_http_request_seconds_count", {"service": "console", "route": route}) or 0
    with TestClient(app) as client:  # the lifespan runs: the live feed's collector is registered
        assert client.get("/api/incidents/cam-1:stopped_vehicle:1700000000000").status_code == 401
        assert client.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]}).status_code == 200
        assert client.get("/api/incidents/cam-1:stopped_vehicle:1700000000000").status_code == 200
        assert client.get("/no/such/page").status_code == 404
        assert REGISTRY.get_sample_value("vigil_console_clients") == 0
        assert REGISTRY.get_sample_value("vigil_console_frames_pushed_total") == 0
    assert requests_of("console", route, "GET", "401") == refused + 1, "the template, never the incident id"
    assert requests_of("console", route, "GET", "200") == found + 1
    assert REGISTRY.get_sample_value("vigil_http_request_seconds_count", {"service": "console", "route": route}) == timed + 2
    assert requests_of("console", "unmatched", "GET", "404") >= 1
    assert REGISTRY.get_sample_value("vigil_console_clients") is None, "unregistered when the app stops"


def test_reid_api_requests_without_a_token_are_counted(tmp_path):
    from services.reid.api import ApiSettings
    from services.reid.api import create_app as create_api

    client = TestClient(create_api(ApiSettings(data_dir=tmp_path)))
    before = requests_of("reid-api", "/transit", "GET", "401")
    assert client.get("/transit").status_code == 401
    assert requests_of("reid-api", "/transit", "GET", "401") == before + 1


def test_expose_serves_metrics_and_registers_the_target(tmp_path):
    from vigil.config import Settings

    port = free_port()
    settings = Settings(data_dir=tmp_path, metrics_port=port, prometheus_embedded=True)
    target = metrics.expose(settings, "console")
    assert json.loads(target.read_text()) == [{"targets": [f"127.0.0.1:{port}"], "labels": {"instance_name": "console"}}]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "vigil_http_requests_total" in body or "# HELP vigil_http_requests_total" in body
    assert metrics.expose(Settings(data_dir=tmp_path, metrics_port=0), "console") is None, "port 0: not served"


def test_the_target_file_goes_when_the_app_shuts_down(tmp_path):
    """uvicorn re-raises SIGTERM after its shutdown, so the target is removed in the app's lifespan, not after run()."""
    from services.reid.api import ApiSettings
    from services.reid.api import create_app as create_api

    target = tmp_path / "reid-api.json"
    target.write_text("[]")
    app = create_api(ApiSettings(data_dir=tmp_path))
    metrics.forget_target_on_shutdown(app, target)
    with TestClient(app) as client:
        assert client.get("/transit").status_code == 401 and target.exists()
    assert not target.exists()


def test_the_reid_api_answers_503_when_the_store_is_down(tmp_path):
    from app.stack.process import free_port
    from services.reid.api import ApiSettings
    from services.reid.api import create_app as create_api

    dsn = f"http://default:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    client = TestClient(create_api(ApiSettings(data_dir=tmp_path, clickhouse_dsn=dsn)))
    response = client.get("/healthz")
    assert response.status_code == 503 and "does not answer" in response.json()["detail"]
    assert "s3cret" not in response.text
