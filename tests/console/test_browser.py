"""The operator console in a real browser: Debian's chromium driven by Playwright, against the real console process
on a free 127.0.0.1 port, fed through the real embedded broker (Tansu) and store (chDB) with the real sink.

Cameras stream frames of the sample car footage with the motion detector's tracked boxes (app/console_feed.py); an
incident with a real evidence clip (H.264 by vigil/evidence.py's write_clip) and snapshot is published on
incidents.v1 and stored by the sink. An operator signs in, sees a tile update, opens the incident, plays its clip to
the end and rejects it; a second browser context sees the state change within a second; the rejection is in
ClickHouse and counted as the noisiest rule; a viewer is refused the same action.

Screenshots go to a temporary folder, or to `VIGIL_CONSOLE_SCREENSHOTS` (the README's come from
`VIGIL_CONSOLE_SCREENSHOTS=docs .venv/bin/python -m pytest tests/console/test_browser.py`).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import yaml

from app.console_feed import Feeder, camera_status, console_env, detection_batch, footage, frame_ref, launch_chromium
from app.console_feed import start_console
from app.scenarios import CAR_TRAFFIC, CAR_ZONES
from app.stack import manager
from app.stack.process import free_port
from services.console.users import UserStore
from tests.conftest import isolated_settings, running, wait_for_rows
from vigil.evidence import draw_snapshot, evidence_uris, label, write_clip
from vigil.framestore import open_frame_store
from vigil.outputs.kafka import KafkaOutput
from vigil.store.client import connect
from vigil.topics import CAMERA_STATUS, DETECTIONS, FRAMES, INCIDENTS

pytestmark = pytest.mark.slow

LIVE, OTHER, MOVED, DOWN = "car-park-live", "car-park-b", "car-park-c", "car-park-d"
CAMERAS = [LIVE, OTHER, MOVED, DOWN, "car-park-e", "car-park-f"]
OPERATOR, OPERATOR_PW = "otto", "operator-pass-1"
VIEWER, VIEWER_PW = "vera", "viewer-pass-1"


@pytest.fixture(scope="module")
def base(settings):
    """Broker and store only (no Triton): started here unless the session's stack already runs them."""
    reports = manager.up(settings, only=["broker", "clickhouse"], log=lambda *_: None)
    started = {r.name for r in reports if r.action == "started"}
    yield settings
    for part in reversed(manager.components(settings)):
        if part.name in started:
            part.process.stop()


def publish_incident_window(settings, frames, opened_ms: int) -> dict:
    """20 s of the footage around `opened_ms` on LIVE as stored frames + FrameRefs + DetectionBatches, its evidence
    (snapshot and clip, as the evidence service writes them) and the incident itself; returns the incident."""
    store = open_frame_store(settings.frame_store_uri)
    output = KafkaOutput(settings)
    # 20 s at 5 fps, opened_ms - 10 s .. opened_ms + 10 s, centred on the frame with the most tracked cars
    centre = max(range(50, len(frames) - 50), key=lambda i: (sum(t >= 0 for t in frames[i].track_id), -abs(i - 80)))
    window = frames[centre - 50:centre + 50]
    involved = [t for t in frames[centre].track_id if t >= 0]
    start_ms = opened_ms - 10_000
    clip_frames = []
    for sequence, frame in enumerate(window):
        ts = start_ms + sequence * 200
        uri = store.put(LIVE, 900_000 + sequence, ts, frame.jpeg, "jpg")
        ref = frame_ref(LIVE, 900_000 + sequence, ts, uri)
        output.write(FRAMES, "FrameRef", ref, key=LIVE.encode(), timestamp_ms=ts)
        output.write(DETECTIONS, "DetectionBatch", detection_batch(ref, frame), key=LIVE.encode(), timestamp_ms=ts)
        clip_frames.append((ts, frame.jpeg))
    best = window[50]
    assert involved, "the footage shows no tracked car"
    incident_id = f"{LIVE}:stopped_vehicle:{opened_ms}"
    snapshot_uri, clip_uri = evidence_uris(settings.frame_store_uri, LIVE, incident_id)
    boxes = [best.xyxy[i:i + 4] for i in range(0, len(best.xyxy), 4)]
    store.put_object(snapshot_uri, draw_snapshot(best.jpeg, boxes, [label(c, t) for c, t in
                                                                    zip(best.class_id, best.track_id)]))
    clip = write_clip(clip_frames)
    store.put_object(clip_uri, clip.data)
    incident = {"incident_id": incident_id, "revision": 1, "camera_id": LIVE, "kind": "stopped_vehicle",
                "state": "open", "severity": "medium", "zones": ["lane-down"], "track_ids": involved,
                "event_ids": [f"{incident_id}:e1"], "opened_ms": opened_ms, "updated_ms": opened_ms + 6000,
                "cleared_ms": None, "score": 8.2, "threshold": 6.0, "snapshot_uri": snapshot_uri, "clip_uri": clip_uri,
                "detection_suspended": False, "emitted_ts_ms": opened_ms + 6500}
    other_id = f"{OTHER}:wrong_way:{opened_ms + 2000}"
    other_snapshot, other_clip = evidence_uris(settings.frame_store_uri, OTHER, other_id)
    other = {**incident, "incident_id": other_id, "camera_id": OTHER, "kind": "wrong_way", "severity": "high",
             "zones": ["lane-up"], "track_ids": [2], "event_ids": [f"{other_id}:e1"], "opened_ms": opened_ms + 2000,
             "snapshot_uri": other_snapshot, "clip_uri": other_clip}
    moved_id = f"{MOVED}:camera_moved:{opened_ms - 30_000}"
    moved = {**incident, "incident_id": moved_id, "camera_id": MOVED, "kind": "camera_moved", "severity": "low",
             "zones": [], "track_ids": [], "event_ids": [f"{moved_id}:e1"], "opened_ms": opened_ms - 30_000,
             "score": 42.0, "threshold": 20.0, "detection_suspended": True,
             "snapshot_uri": evidence_uris(settings.frame_store_uri, MOVED, moved_id)[0],
             "clip_uri": evidence_uris(settings.frame_store_uri, MOVED, moved_id)[1]}
    # a camera this console does not show (another console's, or another test's): never in its queue
    foreign = {**other, "incident_id": f"elsewhere:wrong_way:{opened_ms + 3000}", "camera_id": "elsewhere",
               "event_ids": ["elsewhere:e1"], "opened_ms": opened_ms + 3000}
    for record in (incident, other, moved, foreign):
        output.write(INCIDENTS, "Incident", record, key=record["camera_id"].encode(), timestamp_ms=record["emitted_ts_ms"])
    assert output.flush()
    output.close()
    return {"incident": incident, "other": other, "moved": moved, "clip_ms": clip.duration_ms}


@pytest.fixture(scope="module")
def console(base, tmp_path_factory):
    work = tmp_path_factory.mktemp("console")
    iso = isolated_settings(base)
    frames = footage(seconds=40, fps=5)
    users = UserStore(work / "users.json")
    users.add(OPERATOR, "operator", OPERATOR_PW)
    users.add(VIEWER, "viewer", VIEWER_PW)
    cameras_file = work / "cameras.yaml"
    cameras_file.write_text(yaml.safe_dump({"cameras": [
        {"id": camera, "url": "/dev/null", "zones": [z.model_dump(exclude={"rules"}) for z in CAR_ZONES],
         "traffic": CAR_TRAFFIC.model_dump(mode="json")} for camera in CAMERAS]}))
    with running(iso, infer=False, sink=True, reid=False):
        published = publish_incident_window(iso, frames, opened_ms=time.time_ns() // 1_000_000 - 120_000)
        assert wait_for_rows(iso, "SELECT count() FROM incidents FINAL", 4, timeout_s=60) >= 4
        assert wait_for_rows(iso, "SELECT count() FROM detections FINAL", 100, timeout_s=60) >= 100
        port = free_port()
        process = start_console(console_env(iso, port, work / "users.json", secrets.token_urlsafe(32), cameras_file),
                                work / "console.log")
        stop = threading.Event()
        feeder = Feeder(iso, CAMERAS, fps=5.0, frames=frames, status_every_s=1.0,
                        states={OTHER: "DEGRADED", DOWN: "OFFLINE"}, silent={DOWN})
        feed = threading.Thread(target=feeder.run, args=(stop,), daemon=True)
        feed.start()
        try:
            yield {"url": f"http://127.0.0.1:{port}", "settings": iso, "log": work / "console.log", **published}
        finally:
            stop.set()
            feed.join(10)
            feeder.close()
            process.terminate()
            process.wait(15)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("VIGIL_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(browser, url: str, user: str, password: str, path: str = "/"):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)  # lets Playwright evaluate its waits
    page = context.new_page()
    page.goto(url + path)
    page.wait_for_url("**/login**")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#signin")
    page.wait_for_selector("#who .role")
    return context, page


def test_sign_in_live_tiles_incident_clip_reject_and_second_console(console, browser, shots):
    url = console["url"]
    incident, other = console["incident"], console["other"]

    # a wrong password stays on the sign-in page with the reason
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("#username", OPERATOR)
    page.fill("#password", "not-the-password")
    page.click("#signin")
    page.wait_for_selector("#error.show")
    assert "wrong user name or password" in page.inner_text("#error")
    context.close()

    operator_context, operator = sign_in(browser, url, OPERATOR, OPERATOR_PW)
    assert operator.inner_text("#who") == f"{OPERATOR}operator"
    # live tiles: frames arrive and keep changing; health badges from camera-status.v1; the credit is shown
    tile = f'.tile[data-camera="{LIVE}"]'
    operator.wait_for_function(f"document.querySelector('{tile}') && +document.querySelector('{tile}').dataset.frames >= 3",
                               timeout=20_000)
    first = operator.get_attribute(tile, "data-frame-id")
    operator.wait_for_function(f"document.querySelector('{tile}').dataset.frameId !== '{first}'", timeout=5_000)
    operator.wait_for_function(f"document.querySelector('{tile}').dataset.health === 'ONLINE'", timeout=10_000)
    operator.wait_for_function(f"document.querySelector('.tile[data-camera=\"{OTHER}\"]').dataset.health === 'DEGRADED'",
                               timeout=10_000)
    operator.wait_for_function(f"document.querySelector('.tile[data-camera=\"{MOVED}\"]').dataset.health === 'MOVED'",
                               timeout=10_000)
    operator.wait_for_function(f"document.querySelector('.tile[data-camera=\"{DOWN}\"]').dataset.health === 'OFFLINE'",
                               timeout=10_000)
    assert operator.get_attribute(f'.tile[data-camera="{DOWN}"]', "data-frames") == "0"
    assert "CC BY 4.0" in operator.inner_text("#credit") and "Intel" in operator.inner_text("#credit")
    capture = int(operator.get_attribute(tile, "data-capture-ts"))
    assert abs(time.time() * 1000 - capture) < 5_000, "the tile shows a live frame"
    operator.wait_for_timeout(1500)  # let a car drive into view for the screenshot
    operator.screenshot(path=str(shots / "console-live.png"))

    # the queue: most severe first, filters by camera
    operator.click("#nav-incidents")
    operator.wait_for_selector(f'tr[data-incident="{incident["incident_id"]}"]')
    rows = operator.eval_on_selector_all("#queue tbody tr.row", "rows => rows.map(r => r.dataset.incident)")
    assert rows == [other["incident_id"], incident["incident_id"], console["moved"]["incident_id"]]
    operator.wait_for_selector(f'#f-camera option[value="{LIVE}"]', state="attached")
    operator.select_option("#f-camera", LIVE)
    operator.wait_for_function("document.querySelectorAll('#queue tbody tr.row').length === 1")
    operator.select_option("#f-camera", "")
    operator.wait_for_function("document.querySelectorAll('#queue tbody tr.row').length === 3")
    operator.select_option("#f-kind", "wrong_way")
    operator.wait_for_function("document.querySelectorAll('#queue tbody tr.row').length === 1")
    operator.select_option("#f-kind", "")
    operator.select_option("#f-state", "cleared")
    operator.wait_for_function("document.querySelectorAll('#queue tbody tr.row').length === 0")
    operator.select_option("#f-state", "")
    operator.wait_for_function("document.querySelectorAll('#queue tbody tr.row').length === 3")

    # a second console (a viewer) watches the queue
    viewer_context, viewer = sign_in(browser, url, VIEWER, VIEWER_PW, "/#/incidents")
    viewer.wait_for_selector(f'tr[data-incident="{incident["incident_id"]}"] .verdict-cell')
    assert viewer.inner_text(f'tr[data-incident="{incident["incident_id"]}"] .verdict-cell') == "new"

    # the incident page: snapshot with the tracks drawn, the clip plays to its end
    operator.click(f'tr[data-incident="{incident["incident_id"]}"]')
    operator.wait_for_function("document.getElementById('snapshot').complete && "
                               "document.getElementById('snapshot').naturalWidth === 768", timeout=10_000)
    operator.wait_for_function("window.vigil.state.incident && document.getElementById('clip').readyState >= 1",
                               timeout=10_000)
    assert operator.evaluate("document.getElementById('clip').videoWidth") == 768
    duration = operator.evaluate("document.getElementById('clip').duration")
    assert abs(duration * 1000 - console["clip_ms"]) < 400
    operator.wait_for_function("window.vigil.state.tracks !== null", timeout=10_000)
    tracks = operator.evaluate("window.vigil.state.tracks")
    assert {t["track_id"] for t in tracks["tracks"]} == set(incident["track_ids"]), tracks
    assert tracks["frame_size"] == [768, 432] and tracks["clip_start_ms"] == incident["opened_ms"] - 10_000
    painted = operator.evaluate("""(() => { const c = document.getElementById('snapshot-tracks');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()""")
    assert painted > 200, "the involved tracks are drawn over the snapshot"
    operator.evaluate("(() => { const v = document.getElementById('clip'); v.currentTime = 10; })()")
    operator.wait_for_timeout(700)
    operator.screenshot(path=str(shots / "console-incident.png"), full_page=True)
    operator.evaluate("(() => { const v = document.getElementById('clip'); v.currentTime = 0; v.playbackRate = 4; "
                      "return v.play(); })()")
    operator.wait_for_function("document.getElementById('clip').ended", timeout=30_000)
    assert operator.evaluate("document.getElementById('clip').currentTime") >= duration - 0.3

    # reject with a reason; the viewer's queue shows it within a second
    operator.fill("#reason", "shadow")
    begin = time.monotonic()
    operator.click("#act-rejected")
    viewer.wait_for_function(f"""document.querySelector('tr[data-incident="{incident["incident_id"]}"] .verdict-cell')
                                 .innerText === 'rejected'""", timeout=5_000, polling=20)
    seen_after = time.monotonic() - begin
    print(f"rejection seen by the second console {seen_after * 1000:.0f} ms after the click")
    assert seen_after < 1.0
    operator.wait_for_function("document.querySelector('[data-fact=verdict]').innerText === 'rejected'")
    assert operator.inner_text('[data-fact=reason]') == "shadow"
    assert operator.inner_text('[data-fact=by]').startswith(OPERATOR)

    # the verdict went on incidents.v1 and into ClickHouse through the sink, counted per rule, camera and zone
    iso = console["settings"]
    assert wait_for_rows(iso, "SELECT count() FROM incident_verdicts FINAL WHERE incident_id = {id:String} AND "
                         "verdict = 'rejected' AND actor = {a:String} AND reason = 'shadow'", 1, timeout_s=30,
                         parameters={"id": incident["incident_id"], "a": OPERATOR}) == 1
    assert connect(iso).query("SELECT verdict FROM incidents_current WHERE incident_id = {id:String}",
                              parameters={"id": incident["incident_id"]}).result_rows == [("rejected",)]
    operator.goto(url + "/#/incidents")
    operator.wait_for_function("[...document.querySelectorAll('#noisiest tbody tr')].some(r => "
                               "r.innerText.includes('stopped_vehicle') && r.innerText.includes('lane-down'))",
                               timeout=10_000)
    operator.screenshot(path=str(shots / "console-queue.png"))

    # the viewer may open the incident but is refused the action, by the server
    viewer.click(f'tr[data-incident="{incident["incident_id"]}"]')
    viewer.wait_for_selector("#viewer-note", state="visible")
    viewer.wait_for_function("document.getElementById('snapshot').complete && "
                             "document.getElementById('snapshot').naturalWidth === 768 && "
                             "document.getElementById('clip').readyState >= 2 && window.vigil.state.tracks !== null",
                             timeout=15_000)
    assert not viewer.is_visible("#act-confirmed")
    refused = viewer.evaluate("window.vigil.act('confirmed', null)")
    assert refused["ok"] is False and refused["status"] == 403
    assert "viewer" in viewer.inner_text("#error")
    status = viewer.evaluate(f"""fetch('/api/incidents/{incident["incident_id"]}/verdict', {{method: 'POST',
        headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': window.vigil.state.me.csrf}},
        body: JSON.stringify({{verdict: 'confirmed'}})}}).then(r => r.status)""")
    assert status == 403
    viewer.screenshot(path=str(shots / "console-viewer.png"))
    assert connect(iso).query("SELECT count() FROM incident_verdicts FINAL WHERE actor = {a:String}",
                              parameters={"a": VIEWER}).result_rows[0][0] == 0

    # signing out ends the session: the console sends the browser back to sign in
    operator.click("#logout")
    operator.wait_for_url("**/login**")
    operator.goto(url + "/#/live")
    operator.wait_for_url("**/login**")
    for context in (operator_context, viewer_context):
        context.close()
    assert "otto (operator) signed in" in console["log"].read_text()
    assert OPERATOR_PW not in console["log"].read_text() and VIEWER_PW not in console["log"].read_text()


def test_docs_are_served_offline(console, browser):
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(console["url"]) else None)
    page.goto(console["url"] + "/docs")
    page.wait_for_selector("text=Vigil operator console", timeout=15_000)
    page.wait_for_function("[...document.querySelectorAll('.opblock-summary-path')].some(p => "
                           "p.innerText.replace(/\\u200b/g, '').includes('/verdict'))", timeout=15_000)
    context.close()
    assert outside == [], f"/docs loaded from elsewhere: {outside}"
