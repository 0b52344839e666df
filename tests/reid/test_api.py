"""The re-ID search API on the real store (chDB behind the ClickHouse HTTP protocol) and the real Triton embedder:
similar-track search, crop upload search, trajectories of global ids, transit summaries, the OpenAPI document and
clear errors for unknown tracks and bad uploads; API tokens: analyst or higher, and a camera-scoped token sees only
its cameras."""

import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from jobs.reid.synthetic import summary
from services.reid.api import ApiSettings, create_app
from services.reid.embedder import TritonEmbedder
from vigil.auth import TokenStore
from tests.reid.test_embedders import people  # noqa: F401 - the fixture of real person crops
from vigil.outputs.clickhouse_rows import REID_MATCH_COLUMNS, TRACK_SUMMARY_COLUMNS, reid_match_row, track_summary_row
from vigil.store.client import connect

pytestmark = pytest.mark.slow  # starts real servers or Flink

T0 = int(time.time() * 1000) - 3_600_000  # inside the tables TTL (older rows are dropped on insert)


@pytest.fixture(scope="module")
def api(stack, people, tmp_path_factory):  # noqa: F811
    embedder = TritonEmbedder(stack.triton_url, "reid_learned")
    names = ["p2a", "p3", "p2b-east", "p3-east"]
    vectors = dict(zip(names, embedder.embed(np.stack([people[n] for n in names]))))
    # p2 leaves api-west and enters api-east 12 s later; p3 is seen on api-west only, later
    rows = [summary("api-west", 1, T0, T0 + 10_000, vectors["p2a"], embedder=embedder.name),
            summary("api-east", 2, T0 + 22_000, T0 + 30_000, vectors["p2b-east"], embedder=embedder.name),
            summary("api-west", 3, T0 + 40_000, T0 + 50_000, vectors["p3"], embedder=embedder.name),
            summary("api-east", 4, T0 + 60_000, T0 + 65_000, vectors["p3-east"], embedder=embedder.name),
            # a fragment: one crop (a reflection at the exit) whose vector happens to sit on p2's
            {**summary("api-east", 5, T0 + 21_000, T0 + 21_200, vectors["p2a"], embedder=embedder.name),
             "embedding_samples": 1}]
    match = dict(match_id="api-west:1->api-east:2", global_id="api-west:1", class_id=0, from_camera_id="api-west",
                 from_track_id=1, from_last_seen_ms=T0 + 10_000, to_camera_id="api-east", to_track_id=2,
                 to_first_seen_ms=T0 + 22_000, similarity=float(vectors["p2a"] @ vectors["p2b-east"]),
                 embedder=embedder.name, emitted_ts_ms=T0 + 40_000)
    client = connect(stack)
    client.insert("track_summaries", [track_summary_row(r) for r in rows], column_names=TRACK_SUMMARY_COLUMNS)
    client.insert("reid_matches", [reid_match_row(match)], column_names=REID_MATCH_COLUMNS)
    tokens_file = tmp_path_factory.mktemp("auth") / "tokens.json"
    tokens = TokenStore(tokens_file)
    issued = {name: tokens.add(name, role, cameras) for name, role, cameras in
              (("analyst", "analyst", None), ("viewer", "viewer", None), ("west-only", "analyst", ["api-west"]))}
    settings = ApiSettings(**{**stack.model_dump(), "reid_model": "reid_learned", "api_tokens_file": tokens_file})
    app = create_app(settings)
    app.state.issued = issued
    return TestClient(app, headers={"Authorization": f"Bearer {issued['analyst']}"}), people


def test_similar_tracks_rank_the_same_person_first(api):
    client, _ = api
    mine = {"cameras": ["api-west", "api-east"]}  # other tests' tracks share the store
    response = client.get("/tracks/api-west/1/similar", params={"limit": 5, **mine})
    assert response.status_code == 200, response.text
    hits = response.json()
    assert hits[0]["camera_id"] == "api-east" and hits[0]["track_id"] == 2, hits
    assert all(h["camera_id"] != "api-west" for h in hits), "other cameras only, by default"
    assert hits[0]["similarity"] >= hits[-1]["similarity"]
    nxt = client.get("/tracks/api-west/3/similar", params={"after": True, **mine}).json()
    assert [(h["camera_id"], h["track_id"]) for h in nxt][:1] == [("api-east", 4)], "where did it go next?"


def test_crop_upload_finds_the_track(api):
    client, people = api
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(people["p3-east"], cv2.COLOR_RGB2BGR))
    hits = client.post("/search/crop", files={"image": ("p3.jpg", jpeg.tobytes(), "image/jpeg")},
                       data={"limit": "3", "cameras": "api-west,api-east"}).json()
    assert (hits[0]["camera_id"], hits[0]["track_id"]) == ("api-east", 4), hits
    bad = client.post("/search/crop", files={"image": ("x.jpg", b"not an image", "image/jpeg")})
    assert bad.status_code == 400 and "decodable" in bad.json()["detail"]


def test_trajectory_and_transit(api):
    client, _ = api
    steps = client.get("/identities/api-west:1/trajectory").json()
    assert [(s["camera_id"], s["track_id"]) for s in steps] == [("api-west", 1), ("api-east", 2)]
    assert steps[1]["transit_s"] == pytest.approx(12.0) and steps[0]["transit_s"] is None
    assert client.get("/tracks/api-east/2").json()["global_id"] == "api-west:1"
    transit = client.get("/transit", params={"from_camera": "api-west"}).json()
    assert transit == [pytest.approx(dict(from_camera_id="api-west", to_camera_id="api-east", matches=1, transit_s_min=12.0,
                                          transit_s_p50=12.0, transit_s_p90=12.0, transit_s_max=12.0,
                                          mean_similarity=transit[0]["mean_similarity"]))]


def test_errors_and_openapi(api):
    client, _ = api
    missing = client.get("/tracks/api-west/999")
    assert missing.status_code == 404 and "no track 999" in missing.json()["detail"]
    assert client.get("/identities/nobody:1/trajectory").status_code == 404
    assert client.get("/tracks/api-west/not-a-number").status_code == 422
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/tracks/{camera_id}/{track_id}/similar", "/search/crop", "/identities/{global_id}/trajectory", "/transit"} <= set(paths)


def test_a_fragment_does_not_outrank_the_true_match(api):
    client, _ = api
    mine = {"cameras": ["api-west", "api-east"]}
    hits = client.get("/tracks/api-west/1/similar", params={"limit": 5, **mine}).json()
    assert (hits[0]["camera_id"], hits[0]["track_id"]) == ("api-east", 2) and hits[0]["reliable"]
    assert ("api-east", 5) not in [(h["camera_id"], h["track_id"]) for h in hits], "fragments are left out"
    shown = client.get("/tracks/api-west/1/similar", params={"limit": 5, "fragments": True, **mine}).json()
    fragment = next(h for h in shown if (h["camera_id"], h["track_id"]) == ("api-east", 5))
    assert fragment["reliable"] is False and fragment["embedding_samples"] == 1
    refused = client.get("/tracks/api-east/5/similar", params=mine)
    assert refused.status_code == 409 and "fragment" in refused.json()["detail"]
    assert client.get("/tracks/api-east/5").json()["reliable"] is False


def test_every_search_needs_an_analyst_token_and_a_scoped_token_sees_its_cameras(api):
    client, _ = api
    issued = client.app.state.issued
    anonymous = TestClient(client.app)
    for path in ("/tracks/api-west/1", "/tracks/api-west/1/similar", "/identities/api-west:1/trajectory", "/transit",
                 "/tracks/api-west/1/crop"):
        refused = anonymous.get(path)
        assert refused.status_code == 401 and "Bearer" in refused.json()["detail"], (path, refused.text)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        viewer = anonymous.get(path, headers={"Authorization": f"Bearer {issued['viewer']}"})
        assert viewer.status_code == 403 and "needs analyst" in viewer.json()["detail"], (path, viewer.text)
        wrong = anonymous.get(path, headers={"Authorization": "Bearer vigil_not-a-token-at-all"})
        assert wrong.status_code == 401 and "not known" in wrong.json()["detail"]
    assert anonymous.post("/search/crop", files={"image": ("x.jpg", b"x", "image/jpeg")}).status_code == 401
    assert anonymous.get("/healthz").status_code == 200  # liveness only, for the orchestrator's probe
    west = TestClient(client.app, headers={"Authorization": f"Bearer {issued['west-only']}"})
    assert west.get("/tracks/api-west/1").status_code == 200
    assert west.get("/tracks/api-east/2").status_code == 404, "another camera's track does not exist for it"
    assert west.get("/tracks/api-west/1/similar", params={"cameras": ["api-west", "api-east"]}).json() == []
    assert [s["camera_id"] for s in west.get("/identities/api-west:1/trajectory").json()] == ["api-west"]
    assert west.get("/transit", params={"from_camera": "api-west"}).json() == [], "api-east is outside its scope"
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["api-token"]["scheme"] == "bearer"
