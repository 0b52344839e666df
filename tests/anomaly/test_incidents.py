"""The incident book: raw events of one real-world event become one incident that opens, updates and clears."""

import pickle

from jobs.anomaly.incidents import IncidentBook, IncidentSettings, severity

T0 = 1_700_000_000_000


def uris(camera_id, incident_id):
    return f"file:///ev/{incident_id}.jpg", f"file:///ev/{incident_id}.mp4"


def event(kind, start_s, tracks=(), zone=None, camera="cam-a", score=8.0, threshold=6.0, key=None):
    key = key if key is not None else (tracks[0] if tracks else start_s)
    return dict(event_id=f"{camera}:{kind}:{key}", camera_id=camera, kind=kind, window_start_ms=T0 + int(start_s * 1000),
                window_end_ms=T0 + int(start_s * 1000) + 6000, score=score, threshold=threshold, track_ids=list(tracks),
                zone=zone, top_cells=[], model_version=None, emitted_ts_ms=0)


def test_one_stopped_car_over_two_lanes_is_one_incident():
    book = IncidentBook()
    first = book.observe(event("stopped_vehicle", 0, [7], "lane-1"), 1, uris)
    # the tracker split the car at the lane line: a second track and the other lane, sharing track 7's zone history
    second = book.observe(event("stopped_vehicle", 1, [8], "lane-1", key=8), 2, uris)
    third = book.observe(event("stopped_vehicle", 2, [8], "lane-2", key="8b"), 3, uris)
    assert [r["state"] for r in first + second + third] == ["open", "updated", "updated"]
    incident = third[0]
    assert incident["incident_id"] == f"cam-a:stopped_vehicle:{T0}"
    assert incident["revision"] == 3 and incident["track_ids"] == [7, 8] and incident["zones"] == ["lane-1", "lane-2"]
    assert len(book.open) == 1


def test_other_kinds_cameras_and_events_past_the_gap_open_their_own():
    book = IncidentBook(IncidentSettings(merge_gap_s=30))
    book.observe(event("stopped_vehicle", 0, [7], "lane-1"), 1, uris)
    book.observe(event("wrong_way", 1, [7], "lane-1"), 1, uris)
    book.observe(event("stopped_vehicle", 2, [9], "lane-1", camera="cam-b"), 1, uris)
    later = book.observe(event("stopped_vehicle", 100, [11], "lane-1"), 1, uris)
    assert later[0]["state"] == "open" and len(book.open) == 4
    # a different track in a different zone is a different car
    other = book.observe(event("stopped_vehicle", 101, [12], "lane-3"), 1, uris)
    assert other[0]["state"] == "open"


def test_replayed_events_change_nothing():
    book = IncidentBook()
    e = event("stopped_vehicle", 0, [7], "lane-1")
    assert book.observe(e, 1, uris)
    restored = pickle.loads(pickle.dumps(book))  # what a checkpoint restore gives back
    assert restored.observe(e, 2, uris) == []


def test_clears_when_its_tracks_are_gone_and_camera_wide_when_quiet():
    book = IncidentBook(IncidentSettings(clear_after_s=10, quiet_clear_s=30))
    book.observe(event("stopped_vehicle", 0, [7], "lane-1"), 1, uris)
    book.observe(event("crowding", 0, [], None, key="b0"), 1, uris)
    assert book.seen(T0 + 20_000, [7, 3], 2) == []  # still there at 20 s
    assert book.seen(T0 + 29_000, [3], 2) == []  # gone, but only for 9 s
    cleared = book.seen(T0 + 30_500, [3], 3)
    assert [(c["kind"], c["state"], c["cleared_ms"] - T0) for c in cleared] == [("stopped_vehicle", "cleared", 30_500)]
    assert cleared[0]["revision"] == 2
    cleared = book.seen(T0 + 36_000, [], 4)  # crowding's last evidence ended at 6 s: quiet for 30 s
    assert [c["kind"] for c in cleared] == ["crowding"] and not book.open


def test_a_trackless_incident_stays_open_while_its_event_is_still_present():
    """Debris: the rules stage lists the event as still present while the object is reported; the incident clears
    clear_after_s after the last such report, not quiet_clear_s after it fired."""
    book = IncidentBook(IncidentSettings(clear_after_s=10, quiet_clear_s=30))
    debris = event("debris", 0, [], "lane-1", key="lane-1:0")
    book.observe(debris, 1, uris)
    for second in range(10, 120, 1):
        assert book.seen(T0 + second * 1000, [], 2, still_present=[debris["event_id"]]) == [], second
    assert book.seen(T0 + 125_000, [], 3, still_present=["cam:debris:other"]) == []  # gone 5 s: still open
    cleared = book.seen(T0 + 130_000, [], 4)
    assert [(c["state"], c["cleared_ms"] - T0) for c in cleared] == [("cleared", 130_000)]


def test_severity_follows_kind_score_and_duration():
    assert severity("stopped_vehicle", 7, 6, 0) == "medium"
    assert severity("stopped_vehicle", 13, 6, 0) == "high"
    assert severity("stopped_vehicle", 13, 6, 120_000) == "critical"
    assert severity("wrong_way", 1, 1, 0) == "high"
    assert severity("something_new", 1, 1, 0) == "low"


def test_two_cars_stopping_in_the_same_frame_in_two_lanes_are_two_incidents():
    """Found by load/chaos.py: both cars of the stopped clip stop on the same frame, so their events start in the same
    millisecond; they are two real-world events and were stored as one incident (the second overwrote the first)."""
    book = IncidentBook()
    down = book.observe(event("stopped_vehicle", 0, [2], "lane-down"), 1, uris)
    up = book.observe(event("stopped_vehicle", 0, [3], "lane-up"), 1, uris)
    ids = [down[0]["incident_id"], up[0]["incident_id"]]
    assert ids == ["cam-a:stopped_vehicle:1700000000000", "cam-a:stopped_vehicle:1700000000000-2"]
    assert [r["state"] for r in down + up] == ["open", "open"] and len(book.open) == 2
    replay = pickle.loads(pickle.dumps(book))
    assert replay.observe(event("stopped_vehicle", 0, [3], "lane-up"), 2, uris) == [], "a replay changes nothing"
    cleared = book.seen(T0 + 60_000, [], 3)
    assert sorted(c["incident_id"] for c in cleared) == sorted(ids)
