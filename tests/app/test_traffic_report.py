"""The traffic report is one self-contained HTML page: the frame with the geometry drawn on it, the charts inline,
the credit line, and a plain statement instead of an empty chart when speeds are unavailable."""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
import pytest

from app.traffic_report import CREDIT, ReportError, build_html, draw_geometry, main, parse_utc
from vigil.geometry import CountLine, DetectionZone, Lane, TrafficGeometry

T0 = 1_795_000_000_000
MINUTE_MS = 60_000
CLASSES = {1: "bicycle", 2: "car", 7: "truck"}


@pytest.fixture(scope="module")
def geometry() -> TrafficGeometry:
    return TrafficGeometry(
        lanes=[Lane(name="inbound", number=1, polygon=[(0, 200), (300, 200), (300, 360), (0, 360)], direction=(1, 0)),
               Lane(name="outbound", number=2, polygon=[(320, 200), (640, 200), (640, 360), (320, 360)],
                    direction=(-1, 0))],
        count_lines=[CountLine(name="in-line", lane="inbound", start=(150, 200), end=(150, 360), positive=(1, 0)),
                     CountLine(name="out-line", lane="outbound", start=(480, 200), end=(480, 360), positive=(-1, 0))],
        detection_zones=[DetectionZone(name="in-loop", lane="inbound",
                                       polygon=[(200, 220), (260, 220), (260, 340), (200, 340)])])


@pytest.fixture(scope="module")
def frame_jpeg() -> bytes:
    image = np.full((360, 640, 3), 90, np.uint8)
    cv2.rectangle(image, (0, 200), (640, 360), (60, 60, 60), -1)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def make_bins(speed_available: bool = True, minutes: int = 10) -> list[dict]:
    bins = []
    for minute in range(minutes):
        for lane, number in (("inbound", 1), ("outbound", 2)):
            start = T0 + minute * MINUTE_MS
            offline = minute == 4
            volume = 0 if offline else 5 + minute % 3 + number
            speed = None if offline or not speed_available else 40.0 + minute
            bins.append({
                "bin_id": f"gate:{lane}:{start}", "camera_id": "gate", "lane": lane, "lane_number": number,
                "bin_start_ms": start, "bin_end_ms": start + MINUTE_MS,
                "volume_by_class": {} if offline else {"car": volume - 1, "truck": 1},
                "volume": volume, "volume_positive": volume, "volume_negative": 0, "mean_speed_kmh": speed,
                "p85_speed_kmh": None if speed is None else speed + 6, "occupancy_pct": None if offline else 3.0 * volume,
                "mean_headway_s": None, "mean_gap_s": None, "status": "camera_offline" if offline else "ok",
                "traffic_state": "unknown" if offline else "freeFlow", "free_flow_kmh": 50.0,
                "speed_available": speed_available, "frames": 0 if offline else 300})
    return bins


def make_passages(bins: list[dict]) -> list[dict]:
    passages = []
    for record in bins:
        for i in range(record["volume"]):
            passages.append({
                "passage_id": f"{record['bin_id']}:{i}", "camera_id": "gate", "lane": record["lane"],
                "lane_number": record["lane_number"], "line": f"{record['lane'][:-5] or 'in'}-line",
                "track_id": len(passages), "class_id": 2, "direction": 1, "ts_ms": record["bin_start_ms"] + 1000 * i,
                "speed_kmh": None if record["mean_speed_kmh"] is None else record["mean_speed_kmh"] + i % 3})
    return passages


def external_references(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^"' >]*""", page, flags=re.IGNORECASE)


def test_the_page_is_self_contained_with_lanes_charts_and_credit(geometry, frame_jpeg):
    bins = make_bins()
    page = build_html(bins, make_passages(bins), frame_jpeg, geometry, "gate")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert external_references(page) == []
    assert "<script" not in page and "@import" not in page
    assert re.findall(r"url\(\s*['\"]?(?!#)", page) == []  # only the SVGs' own clip paths (url(#id))
    for name in ("inbound", "outbound", "in-line", "camera_offline", "freeFlow"):
        assert name in page
    assert page.count("<svg") >= 4  # volume, speed, flow-occupancy, class mix (+ speed histogram)
    assert "data:image/jpeg;base64," in page
    assert CREDIT in page
    assert "Speeds unavailable" not in page


def test_the_frame_shows_the_geometry(geometry, frame_jpeg):
    page = build_html(make_bins(), [], frame_jpeg, geometry, "gate")
    encoded = re.search(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page).group(1)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)
    plain = cv2.imdecode(np.frombuffer(frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
    # the lanes are tinted in two different colours
    inbound, outbound = image[300, 60].astype(int), image[300, 580].astype(int)
    assert np.abs(inbound - plain[300, 60]).sum() > 30 and np.abs(outbound - plain[300, 580]).sum() > 30
    assert np.abs(inbound - outbound).sum() > 30


def test_without_calibration_the_page_says_speeds_are_unavailable(geometry, frame_jpeg):
    bins = make_bins(speed_available=False)
    page = build_html(bins, make_passages(bins), frame_jpeg, geometry, "gate")
    assert "Speeds unavailable" in page
    assert "calibration" in page
    assert "Mean speed per lane" in page and page.count("<svg") >= 3


def test_without_frame_or_geometry_the_page_still_renders_and_says_why():
    page = build_html(make_bins(minutes=3), [], None, None, "gate")
    assert "No stored frame" in page and "No traffic geometry" in page
    assert CREDIT in page and "inbound" in page
    assert external_references(page) == []


def test_the_geometry_is_drawn_on_a_blank_canvas_when_the_frame_is_gone(geometry):
    overlay = draw_geometry(None, geometry, {"inbound": "#1f77b4", "outbound": "#ff7f0e"})
    image = cv2.imdecode(np.frombuffer(overlay, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] >= 640 and image.shape[0] >= 360


def test_no_bins_is_a_clear_error():
    with pytest.raises(ReportError, match="no traffic bins"):
        build_html([], [], None, None, "gate")


def test_times_are_checked_with_a_clear_error():
    assert parse_utc("2026-11-22 06:00:00", "since").isoformat() == "2026-11-22T06:00:00+00:00"
    with pytest.raises(ReportError, match="--since"):
        parse_utc("yesterday", "since")


def test_an_unknown_camera_in_the_camera_file_exits_2(tmp_path, capsys):
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - {id: gate, url: rtsp://camera/gate}\n")
    code = main(["--camera", "bridge", "--since", "2026-11-22 06:00:00", "--until", "2026-11-22 07:00:00",
                 "--out", str(tmp_path / "report.html"), "--cameras", str(cameras)])
    assert code == 2
    assert "unknown camera 'bridge'" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
