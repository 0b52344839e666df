"""Bad video (issue 12): ingest's picture-quality figures on real frames of the sample footage, the four rules on
synthetic figures (frozen, blur, low_contrast, camera_moved: once per episode, re-armed, settings per camera), the
suspension of the lane rules while the camera is moved or frozen and how it reaches the incidents
(`detection_suspended`), and the four scenarios cut from the footage run in process (detector, tracker, rules)."""

from __future__ import annotations

import pickle

import av
import cv2
import numpy as np
import pytest

from app.scenarios import BAD_VIDEO_FROM, CAR_DETECTOR, CAR_VIDEO, CAR_ZONES, PERSON_VIDEO, build_bad_video
from jobs.anomaly.incidents import IncidentBook, Presence
from jobs.anomaly.rules import RULES, RuleEngine, RuleSettingsError, RuleState
from jobs.anomaly.synthetic import LANE
from services.ingest.quality import QualityMeter
from vigil.detections import DetectionFrame, Detections, VideoQuality
from vigil.sampling import Sampler
from vigil.zones import Zone
from tests.flink import ValueState

T0 = 1_700_000_000_000
GOOD = VideoQuality(sharpness=180.0, contrast=11.8, still_ms=0, shift_px=0.0, shift_x_px=0.0, shift_y_px=0.0,
                    similarity=0.8, detail=1.2)  # the sample car park's typical figures
BAD = {"frozen": None,  # still_ms grows with the frame time: see quality_at
       "blur": VideoQuality(sharpness=22.0, contrast=11.0, shift_px=0.0, similarity=0.7, detail=1.0),
       "low_contrast": VideoQuality(sharpness=13.0, contrast=3.6, shift_px=0.0, similarity=0.5, detail=0.4),
       "camera_moved": VideoQuality(sharpness=200.0, contrast=12.0, shift_px=63.0, shift_x_px=63.0, shift_y_px=0.0,
                                    similarity=0.1, detail=1.5)}
PICTURE_KINDS = {"frozen", "blur", "low_contrast", "camera_moved"}


def quality_at(kind: str, ts: int, bad_since: int | None) -> VideoQuality:
    if bad_since is None or ts < bad_since:
        return GOOD
    if kind == "frozen":
        return VideoQuality(sharpness=300.0, contrast=18.0, still_ms=ts - bad_since, shift_px=0.0, similarity=0.8,
                            detail=1.7)
    return BAD[kind]


def picture_frames(kind: str, episodes: list[tuple[float, float]], seconds: float, objects=()) -> list[DetectionFrame]:
    """5 fps frames for `seconds`, bad (`kind`) during each (start_s, end_s), good otherwise; `objects` as
    jobs.anomaly.synthetic.frame's (track, class, cx, cy) in every frame."""
    frames = []
    for i in range(int(seconds * 5)):
        ts = T0 + i * 200
        since = next((T0 + int(a * 1000) for a, b in episodes if T0 + a * 1000 <= ts < T0 + b * 1000), None)
        centres = np.array([[o[2], o[3]] for o in objects], dtype=float).reshape(-1, 2)
        boxes = np.hstack([centres - [20, 15], centres + [20, 15]])
        detections = Detections(boxes, np.full(len(objects), 0.9), [o[1] for o in objects], [o[0] for o in objects])
        frames.append(DetectionFrame("cam", ts, 768, 432, detections, quality_at(kind, ts, since)))
    return frames


def run(engine: RuleEngine, frames) -> list[dict]:
    events = []
    for f in frames:
        events += engine.observe(f)
    return events


# --- the rules on synthetic figures -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(PICTURE_KINDS))
def test_each_rule_fires_once_per_episode_and_rearms_when_the_picture_is_good_again(kind):
    engine = RuleEngine("cam", LANE)
    frames = picture_frames(kind, [(10, 40), (60, 90)], 100)
    events = run(engine, frames)
    assert [e["kind"] for e in events] == [kind, kind], events
    first, second = events
    params = engine.settings[kind][0]
    for event, start_s in ((first, 10), (second, 60)):
        assert event["event_id"] == f"cam:{kind}:{event['window_start_ms']}" and event["track_ids"] == []
        assert T0 + start_s * 1000 <= event["window_start_ms"] <= T0 + (start_s + 1) * 1000
        # it fires once the picture has been bad for the rule's seconds (a little earlier for the window rules: 60 %
        # of the window's frames bad suffice), and not much later
        delay_s = (event["window_end_ms"] - T0) / 1000 - start_s
        assert 0.5 * params.seconds <= delay_s <= params.seconds + 0.5, (kind, delay_s)
    assert run(RuleEngine("cam", LANE), frames) == events, "a replay gives the same events, ids included"


def test_the_sample_footages_figures_and_unmeasured_frames_raise_nothing():
    engine = RuleEngine("cam", LANE)
    normal = picture_frames("blur", [], 60)
    unmeasured = [DetectionFrame("cam", f.ts_ms + 60_000, 768, 432, f.detections) for f in normal]
    # the car park's worst figures at 5 fps (services/ingest/quality.py on car-detection.mp4)
    worst = VideoQuality(sharpness=135.0, contrast=9.7, still_ms=0, shift_px=6.6, similarity=0.5, detail=0.92)
    edge = [DetectionFrame("cam", T0 + 120_000 + i * 200, 768, 432, Detections.empty(), worst) for i in range(200)]
    assert run(engine, normal + unmeasured + edge) == []


def test_a_picture_held_for_ten_seconds_is_not_frozen():
    """The stopped scenario holds a frame for 10 s (two cars stop): it must keep raising stopped_vehicle, not frozen."""
    engine = RuleEngine("cam", LANE)
    events = run(engine, picture_frames("frozen", [(5, 15)], 30, objects=[(1, 2, 300, 200)]))
    assert [e["kind"] for e in events] == ["stopped_vehicle"]


def test_settings_per_camera_and_the_camera_wide_rule():
    blurred = picture_frames("blur", [(5, 30)], 30)
    assert run(RuleEngine("cam", LANE, {"blur": {"min_sharpness": 20.0}}), blurred) == []  # this camera is softer
    sooner = run(RuleEngine("cam", LANE, {"blur": {"seconds": 2.0}}), blurred)
    assert [e["kind"] for e in sooner] == ["blur"] and sooner[0]["window_end_ms"] <= T0 + 7_500
    off = RuleEngine("cam", LANE, {"camera_moved": {"enabled": False}})
    assert run(off, picture_frames("camera_moved", [(5, 30)], 30)) == [] and not off.state.per_track_rules_held
    with pytest.raises(RuleSettingsError, match="camera_moved.*camera's rules"):
        RuleEngine("cam", [Zone(name="lane", polygon=LANE[0].polygon, rules={"camera_moved": {"min_shift_px": 5.0}})])
    with pytest.raises(RuleSettingsError, match="min_shift_px"):
        RuleEngine("cam", LANE, {"camera_moved": {"min_shift": 5.0}})
    kinds = [rule.kind for rule in RULES]
    assert PICTURE_KINDS <= set(kinds) and all(rule.camera_wide for rule in RULES if rule.kind in PICTURE_KINDS)


def test_blur_and_camera_moved_do_not_judge_a_flat_picture():
    """Fog squashes sharpness and similarity too: low_contrast fires, blur and camera_moved do not."""
    fog = VideoQuality(sharpness=12.0, contrast=3.6, shift_px=0.0, similarity=0.1, detail=0.35)
    frames = [DetectionFrame("cam", T0 + i * 200, 768, 432, Detections.empty(), GOOD if i < 50 else fog)
              for i in range(200)]
    assert [e["kind"] for e in run(RuleEngine("cam", LANE), frames)] == ["low_contrast"]


# --- suspension of the lane rules ---------------------------------------------------------------------------------

def test_a_moved_camera_suspends_its_lane_rules_until_the_view_is_back():
    parked = [(1, 2, 300, 200)]
    engine = RuleEngine("cam", LANE)
    frames = picture_frames("camera_moved", [(2, 30)], 60, objects=parked)
    events, suspended_at = [], {}
    for f in frames:
        events += engine.observe(f)
        suspended_at[f.ts_ms] = (engine.state.suspended_since_ms, engine.state.per_track_rules_held)
    # the car stood still from 0 s: stopped_vehicle would fire at 6 s; the move at 2 s holds the lane rules at once
    # (before camera_moved fires at ~4 s) and they stay suspended until the view has been back for 10 s (40 s)
    assert [e["kind"] for e in events] == ["camera_moved", "stopped_vehicle"], events
    moved, stopped = events
    assert moved["window_start_ms"] == T0 + 2000
    assert suspended_at[T0 + 2000] == (None, True), "held back from the first moved frame"
    assert suspended_at[moved["window_end_ms"]] == (T0 + 2000, True), "suspended once it fired, since the move"
    assert stopped["window_end_ms"] >= T0 + 38_000, "the lane rules resumed once the view was back"
    assert suspended_at[T0 + 59_800] == (None, False)


def test_frozen_suspends_the_lane_rules_once_it_fires():
    engine = RuleEngine("cam", LANE)
    frames = picture_frames("frozen", [(2, 40)], 40, objects=[(1, 2, 300, 200)])
    events = run(engine, frames[:70])  # 14 s: stopped (at 6 s) fired before the picture counted as frozen (at 14 s)
    assert [e["kind"] for e in events] == ["stopped_vehicle"] and engine.state.suspended_since_ms is None
    events = run(engine, frames[70:])
    assert [e["kind"] for e in events] == ["frozen"] and engine.state.suspended_since_ms == T0 + 2000


def test_blur_and_low_contrast_do_not_suspend_unless_configured():
    frames = picture_frames("blur", [(2, 30)], 30, objects=[(1, 2, 300, 200)])
    assert [e["kind"] for e in run(RuleEngine("cam", LANE), frames)] == ["blur", "stopped_vehicle"]
    engine = RuleEngine("cam", LANE, {"blur": {"suspend_lane_rules": True}})
    assert [e["kind"] for e in run(engine, frames)] == ["blur"]  # blurred at 5 s: the car would be stopped at 6 s
    assert engine.state.suspended_since_ms == T0 + 2000


def test_rule_state_with_episodes_survives_pickling_and_old_checkpoints_restore():
    engine = RuleEngine("cam", LANE)
    frames = picture_frames("camera_moved", [(2, 60)], 60)
    run(engine, frames[:100])
    restored = pickle.loads(pickle.dumps(engine.state))
    assert restored.suspended == engine.state.suspended and restored.suspended_since_ms == T0 + 2000
    old = RuleState()
    del old.__dict__["suspended"], old.__dict__["guarded"]  # a checkpoint written before bad video existed
    back = pickle.loads(pickle.dumps(old))
    assert back.suspended == {} and back.guarded == {} and back.suspended_since_ms is None


# --- the signal to the incident stage -----------------------------------------------------------------------------



def _uris(camera_id, incident_id):
    return f"file:///ev/{incident_id}.jpg", f"file:///ev/{incident_id}.mp4"


def test_incidents_say_detection_suspended_while_the_camera_is_moved():
    """The job's rules stage sends Presence(suspended=True) ahead of the camera_moved event; the incident book marks
    every revision while suspended, and the incidents that were open get a revision saying so, and again when the
    suspension ends."""
    from jobs.anomaly.job import Incidents, Rules

    rules = Rules({"cam": LANE}, {})
    rules.rule_state, rules.presence = ValueState(), ValueState()
    rules.engines = {"cam": RuleEngine("cam", LANE)}
    incidents = Incidents(None, "")
    incidents.book, incidents.uris, incidents.settings = ValueState(), _uris, IncidentBook().settings
    # a car stops at 0 s (stopped_vehicle at 6 s); the camera is knocked at 10 s and pointed back at 40 s
    frames = picture_frames("camera_moved", [(10, 40)], 70, objects=[(1, 2, 300, 200)])
    outputs = [out for f in frames for out in rules.process_element(("cam", f), None)]
    presences = [(i, o.suspended) for i, o in enumerate(outputs) if isinstance(o, Presence)]
    flips = [(i, s) for k, (i, s) in enumerate(presences) if k == 0 or s != presences[k - 1][1]]
    moved_at = next(i for i, o in enumerate(outputs) if isinstance(o, dict) and o["kind"] == "camera_moved")
    assert [s for _, s in flips] == [False, True, False] and flips[1][0] < moved_at, "the signal comes first"
    revisions = [r for o in outputs for r in incidents.process_element(o, None)]
    by_kind = {}
    for r in revisions:
        by_kind.setdefault(r["kind"], []).append((r["state"], r["detection_suspended"]))
    assert by_kind["camera_moved"][0] == ("open", True)
    stopped = by_kind["stopped_vehicle"]
    assert stopped[:3] == [("open", False), ("updated", True), ("updated", False)], stopped


def test_incident_book_suspension_flag():
    book = IncidentBook()
    event = dict(event_id="cam:stopped_vehicle:1", camera_id="cam", kind="stopped_vehicle", window_start_ms=T0,
                 window_end_ms=T0 + 6000, score=6.0, threshold=6.0, track_ids=[1], zone="lane", top_cells=[],
                 model_version=None, emitted_ts_ms=0)
    assert book.observe(event, 1, _uris)[0]["detection_suspended"] is False
    assert book.seen(T0 + 7000, [1], 2) == [], "no flag given: nothing changes"
    flipped = book.seen(T0 + 8000, [1], 3, suspended=True)
    assert [(r["state"], r["revision"], r["detection_suspended"]) for r in flipped] == [("updated", 2, True)]
    assert book.seen(T0 + 9000, [1], 4, suspended=True) == []
    moved = dict(event, event_id="cam:camera_moved:1", kind="camera_moved", track_ids=[], zone=None)
    assert book.observe(moved, 5, _uris)[0]["detection_suspended"] is True
    cleared = book.seen(T0 + 60_000, [], 6, suspended=True)
    assert {r["state"] for r in cleared} == {"cleared"} and all(r["detection_suspended"] for r in cleared)
    assert pickle.loads(pickle.dumps(book)).suspended is True


# --- ingest's measurement on real frames ------------------------------------------------------------------------

def measure(path, fps: float = 5.0, transform=None, start_s: float = 0.0) -> list[tuple[float, dict]]:
    """Decode and sample a video as ingest does and measure every sampled frame; `transform` changes the frames from
    `start_s` on."""
    meter, sampler, out = QualityMeter(), Sampler(fps), []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if not sampler.take(t):
                continue
            bgr = frame.to_ndarray(format="bgr24")
            if transform is not None and t >= start_s:
                bgr = transform(bgr)
            out.append((t, meter.measure(bgr, T0 + int(t * 1000))))
    return out


@pytest.fixture(scope="module")
def car_figures():
    return measure(CAR_VIDEO)


def test_normal_footage_reads_sharp_contrasted_live_and_unmoved(car_figures):
    for figures in (car_figures, measure(PERSON_VIDEO)):
        referenced = [q for _, q in figures if q["shift_px"] is not None]
        assert len(referenced) >= len(figures) - 25, "the reference view is learnt within 5 s"
        assert min(q["sharpness"] for _, q in figures) > 100
        assert min(q["contrast"] for _, q in figures) > 9
        assert max(q["still_ms"] for _, q in figures) == 0, "a static real scene (the empty room) is not frozen"
        assert max(q["shift_px"] for q in referenced) < 10
        assert min(q["similarity"] for q in referenced) >= 0.45
        assert min(q["detail"] for q in referenced) >= 0.8


def test_blurred_footage_reads_low_sharpness(car_figures):
    blurred = measure(CAR_VIDEO, transform=lambda bgr: cv2.GaussianBlur(bgr, (0, 0), 4.0), start_s=8.0)
    normal = np.median([q["sharpness"] for t, q in car_figures if t >= 8.0])
    soft = np.median([q["sharpness"] for t, q in blurred if t >= 8.0])
    assert soft < 30 < 100 < normal
    contrast = np.median([q["contrast"] for t, q in blurred if t >= 8.0])
    assert contrast > 9, "blur keeps the contrast"


def test_fog_reads_low_contrast(car_figures):
    fog = measure(CAR_VIDEO, transform=lambda bgr: (bgr * 0.3 + 204 * 0.7).astype(np.uint8), start_s=8.0)
    assert np.median([q["contrast"] for t, q in fog if t >= 8.0]) < 5
    assert np.median([q["detail"] for t, q in fog if t >= 8.5]) < 0.7


@pytest.mark.parametrize("dx, dy", [(60, 0), (0, -40), (-30, 30)])
def test_a_shifted_view_reads_its_shift(dx, dy):
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = measure(CAR_VIDEO, start_s=8.0,
                    transform=lambda bgr: cv2.warpAffine(bgr, shift, (768, 432), borderMode=cv2.BORDER_REFLECT))
    after = [q for t, q in moved if t >= 8.0]
    measured = [q for q in after if q["shift_px"] > 0]
    assert len(measured) >= 0.5 * len(after), "the shift is measured wherever traffic does not hide the structure"
    assert np.median([q["shift_x_px"] for q in measured]) == pytest.approx(dx, abs=8)
    assert np.median([q["shift_y_px"] for q in measured]) == pytest.approx(dy, abs=8)
    assert max(q["similarity"] for q in after) < 0.45, "nor does the moved view look like the reference"


def test_repeated_frames_read_still_for_as_long_as_they_repeat():
    with av.open(str(CAR_VIDEO)) as container:
        frames = [f.to_ndarray(format="bgr24") for i, f in zip(range(60), container.decode(video=0))]
    meter = QualityMeter()
    live = [meter.measure(frame, T0 + i * 200) for i, frame in enumerate(frames[:30])]
    held = [meter.measure(frames[29], T0 + (30 + i) * 200) for i in range(50)]  # the stream repeats one picture
    resumed = [meter.measure(frame, T0 + (80 + i) * 200) for i, frame in enumerate(frames[30:])]
    assert [q["still_ms"] for q in live] == [0] * 30
    assert [q["still_ms"] for q in held] == [200 * (i + 1) for i in range(50)]
    # the next frames (12.5 fps, a car driving) could still be codec refreshes of the held picture; a fourth is not
    assert [q["still_ms"] > 0 for q in resumed[:3]] == [True] * 3 and all(q["still_ms"] == 0 for q in resumed[3:])


# --- the scenarios, in process -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_video(tmp_path_factory):
    return {s.name: s for s in build_bad_video(tmp_path_factory.mktemp("bad-video"))}


def test_the_frozen_clip_reads_still_through_its_codec_refreshes(bad_video):
    figures = measure(bad_video["frozen"].path)
    (start, end), = bad_video["frozen"].injected["frozen"]
    longest = max(q["still_ms"] for _, q in figures)
    assert 14_000 <= longest <= 15_500
    # re-encoded (mpeg4, qscale 2) the empty car park's noise is coded away: a moment without traffic can read still
    # for under a second, nothing like a frozen stream
    assert max(q["still_ms"] for t, q in figures if t > end + 0.5) < 2000


@pytest.mark.slow  # the car camera's detector in process over 3 min of footage: about 2.5 min on 2 cores
def test_the_bad_video_scenarios_in_process(bad_video):
    """Ingest's figures, the car camera's detector and the tracker, and the rules, as the pipeline runs them: each
    scenario raises its kind within its threshold + 10 s of the truth time; the moved camera's held frame (two cars
    stopped) raises no stopped_vehicle, which it does without the figures; the untouched footage raises nothing."""
    from app.inprocess import detector
    from vigil.tracker import ByteTracker, detect_and_track

    model = detector(CAR_DETECTOR)

    def replay(name, path, with_quality=True):
        meter, sampler, tracker, events = QualityMeter(), Sampler(5.0), ByteTracker(), []
        engine = RuleEngine(name, CAR_ZONES)
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                t = float(frame.time)
                if not sampler.take(t):
                    continue
                ts, bgr = T0 + int(t * 1000), frame.to_ndarray(format="bgr24")
                quality = VideoQuality.from_record(meter.measure(bgr, ts)) if with_quality else None
                tracked = detect_and_track(model, tracker, name, np.ascontiguousarray(bgr[:, :, ::-1]))
                events += engine.observe(DetectionFrame(name, ts, bgr.shape[1], bgr.shape[0], tracked, quality))
        return events

    for name, scenario in bad_video.items():
        events = replay(name, scenario.path)
        (start_s, _), = scenario.injected[name]
        threshold_s = RuleEngine(name).settings[name][0].seconds
        mine = [e for e in events if e["kind"] == name]
        assert len(mine) == 1, (name, events)
        assert T0 + start_s * 1000 <= mine[0]["window_end_ms"] <= T0 + (start_s + threshold_s + 10) * 1000, mine
        assert {e["kind"] for e in events} - {name} <= {"stopped_vehicle"}, (name, events)
        if name == "camera_moved":
            assert [e for e in events if e["kind"] != "camera_moved"] == [], "no lane rule fires on the moved view"
            assert {e["kind"] for e in replay(name, scenario.path, with_quality=False)} == {"stopped_vehicle"}
    assert [e for e in replay("normal_cars", CAR_VIDEO) if e["kind"] in PICTURE_KINDS] == []
    assert BAD_VIDEO_FROM == 8.0
