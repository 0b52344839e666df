"""`vigil traffic-report`: one self-contained HTML page of a camera's traffic over a period, for an analyst or a
traffic engineer. It works offline: the frame and every chart are inline (JPEG as a data URI, charts as SVG), with no
scripts, fonts or links to fetch.

    vigil traffic-report --camera car-park --since "2026-11-22 06:00:00" --until "2026-11-22 09:00:00" \\
        --out report.html --cameras cameras.yaml

`fetch` reads ClickHouse (the traffic bins, the vehicle passages, the camera's latest frame from the frame store);
`build_html` is pure, so the page is tested without a server. Times are UTC.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import io
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from vigil.config import Settings, get_settings
from vigil.datex2 import flow_per_hour
from vigil.framestore import open_frame_store
from vigil.store.client import connect

CREDIT = "© Intel Corporation, CC BY 4.0 (intel-iot-devkit/sample-videos)"
SPEEDS_UNAVAILABLE = ("Speeds unavailable: this camera has no calibration, so Vigil does not estimate speeds "
                      "(add a <code>calibration:</code> to its <code>traffic:</code> geometry in the camera file).")
UNOBSERVED = ("no_data", "camera_offline")  # bins without values (never plotted as zero)
LANE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
STATUS_COLOURS = {"ok": "#2ca02c", "no_activity": "#7f7f7f", "camera_degraded": "#ff7f0e", "no_data": "#d62728",
                  "camera_offline": "#d62728"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

BINS_SQL = """
SELECT bin_id, camera_id, lane, lane_number, toUnixTimestamp64Milli(bin_start) AS bin_start_ms,
       toUnixTimestamp64Milli(bin_end) AS bin_end_ms, volume_by_class, volume, volume_positive, volume_negative,
       mean_speed_kmh, p85_speed_kmh, occupancy_pct, mean_headway_s, mean_gap_s, status, traffic_state,
       free_flow_kmh, speed_available, frames
FROM traffic_bins FINAL
WHERE camera_id = {camera:String}
  AND bin_start >= {since:DateTime64(3, 'UTC')} AND bin_start < {until:DateTime64(3, 'UTC')}
ORDER BY bin_start, lane_number, lane"""
PASSAGES_SQL = """
SELECT passage_id, camera_id, lane, lane_number, line, track_id, class_id, direction,
       toUnixTimestamp64Milli(ts) AS ts_ms, speed_kmh
FROM vehicle_passages FINAL
WHERE camera_id = {camera:String} AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
ORDER BY ts"""
# The latest frames of the period, then the camera's latest at all: the frame store keeps fewer hours than ClickHouse.
FRAMES_SQL = """
SELECT uri FROM (
    (SELECT uri, 0 AS preference, capture_ts FROM frames WHERE camera_id = {camera:String}
     AND capture_ts < {until:DateTime64(3, 'UTC')} ORDER BY capture_ts DESC LIMIT 5)
    UNION ALL
    (SELECT uri, 1 AS preference, capture_ts FROM frames WHERE camera_id = {camera:String}
     ORDER BY capture_ts DESC LIMIT 5))
ORDER BY preference, capture_ts DESC"""
EXTENT_SQL = """
SELECT count(), toUnixTimestamp64Milli(min(bin_start)), toUnixTimestamp64Milli(max(bin_end))
FROM traffic_bins WHERE camera_id = {camera:String}"""


class ReportError(ValueError):
    """What the user must change: an unknown camera, a period without bins, a malformed time."""


@dataclass
class ReportData:
    bins: list[dict]
    passages: list[dict]
    frame_jpeg: bytes | None


def parse_utc(text: str | datetime.datetime, what: str) -> datetime.datetime:
    if isinstance(text, datetime.datetime):
        return text if text.tzinfo else text.replace(tzinfo=datetime.UTC)
    try:
        return datetime.datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise ReportError(f"--{what} {text!r} is not a time like '2026-11-22 06:00:00' (UTC)") from None


def _utc(epoch_ms: int) -> datetime.datetime:
    return datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=int(epoch_ms))


def fetch(settings: Settings, camera_id: str, since, until, client=None, frame_store=None) -> ReportData:
    """The camera's bins and passages of [since, until) and its latest frame's JPEG (None when no longer stored)."""
    since, until = parse_utc(since, "since"), parse_utc(until, "until")
    if until <= since:
        raise ReportError(f"--until {until:{TIME_FORMAT}} is not after --since {since:{TIME_FORMAT}}")
    client = client or connect(settings, read_only=True)
    parameters = {"camera": camera_id, "since": since.strftime(TIME_FORMAT), "until": until.strftime(TIME_FORMAT)}
    bins = [dict(row) for row in client.query(BINS_SQL, parameters=parameters).named_results()]
    if not bins:
        count, first_ms, last_ms = client.query(EXTENT_SQL, parameters={"camera": camera_id}).result_rows[0]
        if not count:
            raise ReportError(f"camera {camera_id!r} has no traffic bins at all: an unknown camera, or one the "
                              "traffic job does not count (give it a `traffic:` geometry in the camera file)")
        raise ReportError(f"camera {camera_id!r} has no traffic bins between {since:{TIME_FORMAT}} and "
                          f"{until:{TIME_FORMAT}} UTC; it has bins from {_utc(first_ms):{TIME_FORMAT}} to "
                          f"{_utc(last_ms):{TIME_FORMAT}}")
    passages = [dict(row) for row in client.query(PASSAGES_SQL, parameters=parameters).named_results()]
    store = frame_store or open_frame_store(settings.frame_store_uri)
    frame_jpeg = None
    for uri in dict.fromkeys(row[0] for row in client.query(FRAMES_SQL, parameters=parameters).result_rows):
        try:
            frame_jpeg = store.get(uri)
            break
        except FileNotFoundError:  # removed by the frame store's retention
            continue
    return ReportData(bins, passages, frame_jpeg)


# ---- the page (pure) ----------------------------------------------------------------------------------------------

def _get(item, name: str, default=None):
    """A geometry field, from the geometry models (vigil/geometry.py) or the same shapes as plain dicts."""
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)


def _lanes(bins: list[dict], geometry) -> list[tuple[str, int]]:
    """(name, number) of every lane, in lane-number order: the geometry's and any others the bins name."""
    configured = (_get(geometry, "lanes") or []) if geometry else []
    lanes = {_get(lane, "name"): int(_get(lane, "number")) for lane in configured}
    for record in bins:
        lanes.setdefault(record["lane"], int(record["lane_number"]))
    return sorted(lanes.items(), key=lambda lane: (lane[1], lane[0]))


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return blue, green, red


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    for thickness, ink in ((max(2, round(3 * scale)), (0, 0, 0)), (max(1, round(scale)), colour)):
        cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, ink, thickness, cv2.LINE_AA)


def _unit(vector) -> np.ndarray | None:
    if vector is None:
        return None
    vector = np.asarray(vector, dtype=float)
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 1e-9 else None


def draw_geometry(frame_jpeg: bytes | None, geometry, colours: dict[str, str]) -> bytes | None:
    """The frame (or a blank canvas the size of the geometry) with lanes filled in their colours, their travel
    directions, detection zones outlined and count lines with an arrow pointing in their positive direction → JPEG."""
    image = cv2.imdecode(np.frombuffer(frame_jpeg, np.uint8), cv2.IMREAD_COLOR) if frame_jpeg else None
    if image is None:
        if not geometry:
            return None
        points = [p for lane in _get(geometry, "lanes") or [] for p in _get(lane, "polygon")]
        width, height = (int(max(c) * 1.05) + 1 for c in zip(*points)) if points else (1280, 720)
        image = np.full((max(height, 240), max(width, 320), 3), 48, np.uint8)
    if not geometry:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return encoded.tobytes() if ok else None
    scale = max(1.0, min(image.shape[:2]) / 480)
    thickness = max(1, round(2 * scale))
    filled = image.copy()
    lanes = _get(geometry, "lanes") or []
    for lane in lanes:
        polygon = np.asarray(_get(lane, "polygon"), dtype=np.int32)
        cv2.fillPoly(filled, [polygon], _bgr(colours.get(_get(lane, "name"), "#ffffff")))
    image = cv2.addWeighted(filled, 0.3, image, 0.7, 0)
    for lane in lanes:
        name, colour = _get(lane, "name"), _bgr(colours.get(_get(lane, "name"), "#ffffff"))
        polygon = np.asarray(_get(lane, "polygon"), dtype=float)
        cv2.polylines(image, [polygon.astype(np.int32)], True, colour, thickness, cv2.LINE_AA)
        centre = polygon.mean(axis=0)
        direction = _unit(_get(lane, "direction"))
        if direction is not None:
            half = direction * 0.15 * min(np.ptp(polygon, axis=0).max(), min(image.shape[:2]))
            tail, head = (tuple(point.astype(int).tolist()) for point in (centre - half, centre + half))
            cv2.arrowedLine(image, tail, head, colour, thickness, cv2.LINE_AA, tipLength=0.3)
        corner = polygon.min(axis=0) + [6 * scale, 18 * scale]
        _label(image, f"{name} ({_get(lane, 'number')})", tuple(corner.astype(int).tolist()), (255, 255, 255), scale)
    for zone in _get(geometry, "detection_zones") or []:
        colour = _bgr(colours.get(_get(zone, "lane"), "#ffffff"))
        polygon = np.asarray(_get(zone, "polygon"), dtype=np.int32)
        cv2.polylines(image, [polygon], True, (255, 255, 255), thickness + 2, cv2.LINE_AA)
        cv2.polylines(image, [polygon], True, colour, thickness, cv2.LINE_AA)
        _label(image, _get(zone, "name"), tuple(polygon.min(axis=0).tolist()), (255, 255, 255), scale * 0.8)
    for line in _get(geometry, "count_lines") or []:
        colour = _bgr(colours.get(_get(line, "lane"), "#ffffff"))
        start, end = np.asarray(_get(line, "start"), float), np.asarray(_get(line, "end"), float)
        cv2.line(image, tuple(start.astype(int).tolist()), tuple(end.astype(int).tolist()), (0, 0, 0), thickness + 3,
                 cv2.LINE_AA)
        cv2.line(image, tuple(start.astype(int).tolist()), tuple(end.astype(int).tolist()), colour, thickness + 1,
                 cv2.LINE_AA)
        positive = _unit(_get(line, "positive"))
        tip = middle = (start + end) / 2
        if positive is not None:
            tip = middle + positive * max(30.0 * scale, 0.3 * float(np.hypot(*(end - start))))
            cv2.arrowedLine(image, tuple(middle.astype(int).tolist()), tuple(tip.astype(int).tolist()), (255, 255, 255),
                            thickness + 1, cv2.LINE_AA, tipLength=0.3)
        _label(image, f"{_get(line, 'name')} (+)", tuple((tip + [4 * scale, -6 * scale]).astype(int).tolist()),
               (255, 255, 255), scale * 0.8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return encoded.tobytes() if ok else None


def _figure(width: float = 9.0, height: float = 3.2) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _svg(figure: Figure) -> str:
    """The figure as inline SVG: text as paths (no fonts), no XML declaration, DOCTYPE or metadata links."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _time_axis(axes) -> None:
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=datetime.UTC))
    axes.grid(alpha=0.3)


def _shade_unobserved(axes, bins: list[dict]) -> bool:
    spans = sorted({(r["bin_start_ms"], r["bin_end_ms"]) for r in bins if r["status"] in UNOBSERVED})
    for start, end in spans:
        axes.axvspan(_utc(start), _utc(end), color="#d62728", alpha=0.12, lw=0)
    return bool(spans)


def _time_series(bins: list[dict], lanes, colours, value, ylabel: str) -> str:
    figure = _figure()
    axes = figure.add_subplot()
    top = 0.0
    for name, _ in lanes:
        rows = [r for r in bins if r["lane"] == name]
        times = [_utc(r["bin_start_ms"]) for r in rows]
        values = [np.nan if r["status"] in UNOBSERVED or value(r) is None else value(r) for r in rows]
        axes.plot(times, values, marker=".", ms=4, lw=1.3, color=colours[name], label=name)
        top = max([top, *(v for v in values if not np.isnan(v))])
    if _shade_unobserved(axes, bins):
        axes.plot([], [], color="#d62728", alpha=0.3, lw=6, label="not observed")
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, top * 1.3 + 1)  # headroom for the legend
    _time_axis(axes)
    axes.legend(loc="upper left", fontsize="small", ncols=min(len(lanes) + 1, 6))
    return _svg(figure)


def _flow_occupancy(bins: list[dict], lanes, colours) -> str | None:
    figure = _figure(6.0, 4.0)
    axes = figure.add_subplot()
    occupancies, flows = [], []
    for name, _ in lanes:
        rows = [r for r in bins
                if r["lane"] == name and r["status"] not in UNOBSERVED and r.get("occupancy_pct") is not None]
        if rows:
            occupancy = [r["occupancy_pct"] for r in rows]
            flow = [flow_per_hour(r["volume"], r["bin_start_ms"], r["bin_end_ms"]) for r in rows]
            axes.scatter(occupancy, flow, s=14, alpha=0.7, color=colours[name], label=name)
            occupancies += occupancy
            flows += flow
    if not flows:
        return None
    axes.set_xlabel("occupancy (%)")
    axes.set_ylabel("flow (vehicles/hour)")
    axes.set_xlim(0, max(occupancies) * 1.1 + 1)
    axes.set_ylim(0, max(flows) * 1.1 + 10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _svg(figure)


def _class_mix(bins: list[dict], lanes, colours) -> str | None:
    by_lane = {name: Counter() for name, _ in lanes}
    for record in bins:
        by_lane[record["lane"]].update({k: v for k, v in (record.get("volume_by_class") or {}).items() if v})
    totals = sum(by_lane.values(), Counter())
    classes = [name for name, _ in totals.most_common()]
    if not classes:
        return None
    figure = _figure(6.0, 3.2)
    axes = figure.add_subplot()
    bottom = np.zeros(len(classes))
    for name, _ in lanes:
        heights = np.array([by_lane[name][c] for c in classes], dtype=float)
        axes.bar(classes, heights, bottom=bottom, color=colours[name], label=name)
        bottom += heights
    axes.set_ylabel("vehicles")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize="small")
    return _svg(figure)


def _speed_histogram(passages: list[dict], lanes, colours) -> str | None:
    speeds = {name: [p["speed_kmh"] for p in passages if p["lane"] == name and p.get("speed_kmh") is not None]
              for name, _ in lanes}
    if not any(speeds.values()):
        return None
    figure = _figure(6.0, 3.2)
    axes = figure.add_subplot()
    top = max(max(values) for values in speeds.values() if values)
    edges = np.arange(0, top + 5, 5)
    axes.hist([speeds[name] for name, _ in lanes], bins=edges, stacked=True,
              color=[colours[name] for name, _ in lanes], label=[name for name, _ in lanes])
    axes.set_xlabel("speed at the count line (km/h)")
    axes.set_ylabel("vehicles")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize="small")
    return _svg(figure)


def _fmt(value, decimals: int = 1) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _summary_table(bins: list[dict], lanes, colours) -> str:
    rows = []
    for name, number in lanes:
        lane_bins = [r for r in bins if r["lane"] == name]
        observed = [r for r in lane_bins if r["status"] not in UNOBSERVED]
        flows = [flow_per_hour(r["volume"], r["bin_start_ms"], r["bin_end_ms"]) for r in observed]
        speed = _mean(r.get("mean_speed_kmh") for r in observed)
        rows.append(
            f"<tr><td><span class='swatch' style='background:{colours[name]}'></span>{html.escape(name)}</td>"
            f"<td>{number}</td><td>{len(lane_bins)}</td><td>{len(lane_bins) - len(observed)}</td>"
            f"<td>{sum(r['volume'] for r in observed)}</td>"
            f"<td>{sum(r.get('volume_positive') or 0 for r in observed)} / "
            f"{sum(r.get('volume_negative') or 0 for r in observed)}</td>"
            f"<td>{_fmt(_mean(flows), 0)}</td><td>{_fmt(speed)}</td>"
            f"<td>{_fmt(_mean(r.get('occupancy_pct') for r in observed))}</td></tr>")
    return ("<table><thead><tr><th>lane</th><th>number</th><th>bins</th><th>not observed</th><th>vehicles</th>"
            "<th>positive / negative</th><th>mean flow (veh/h)</th><th>mean speed (km/h)</th>"
            "<th>mean occupancy (%)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _passages_table(passages: list[dict]) -> str:
    if not passages:
        return "<p class='note'>No vehicle passages recorded in this period.</p>"
    by_line: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for passage in passages:
        by_line[(passage["lane"], passage["line"])].append(passage)
    rows = []
    for (lane, line), items in sorted(by_line.items()):
        speeds = sorted(p["speed_kmh"] for p in items if p.get("speed_kmh") is not None)
        median = speeds[len(speeds) // 2] if speeds else None
        positive = sum(1 for p in items if p["direction"] > 0)
        rows.append(f"<tr><td>{html.escape(line)}</td><td>{html.escape(lane)}</td><td>{len(items)}</td>"
                    f"<td>{positive}</td><td>{len(items) - positive}</td><td>{_fmt(median)}</td></tr>")
    return ("<table><thead><tr><th>count line</th><th>lane</th><th>passages</th><th>positive</th><th>negative</th>"
            "<th>median speed (km/h)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _bins_table(bins: list[dict]) -> str:
    rows = []
    for r in bins:
        observed = r["status"] not in UNOBSERVED
        flow = flow_per_hour(r["volume"], r["bin_start_ms"], r["bin_end_ms"]) if observed else None
        rows.append(
            f"<tr><td>{_utc(r['bin_start_ms']):%Y-%m-%d %H:%M}</td><td>{html.escape(r['lane'])}</td>"
            f"<td>{r['volume'] if observed else '–'}</td><td>{_fmt(flow, 0)}</td>"
            f"<td>{_fmt(r.get('mean_speed_kmh'))}</td><td>{_fmt(r.get('occupancy_pct'))}</td>"
            f"<td><span class='status' style='color:{STATUS_COLOURS.get(r['status'], '#000')}'>"
            f"{html.escape(r['status'])}</span></td><td>{html.escape(r['traffic_state'])}</td></tr>")
    return ("<div class='scroll'><table><thead><tr><th>bin start (UTC)</th><th>lane</th><th>vehicles</th>"
            "<th>flow (veh/h)</th><th>mean speed (km/h)</th><th>occupancy (%)</th><th>status</th>"
            "<th>traffic state</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem}th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{position:sticky;top:0;background:#fafafa}
.scroll{max-height:26rem;overflow:auto;border:1px solid #eee}.note{color:#8a4b00;background:#fff4e5;padding:.5rem .8rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.4rem;vertical-align:middle;border-radius:2px}
figure{margin:0}figcaption{font-size:.8rem;color:#555}.frame img{max-width:100%;height:auto}
.pair{display:flex;flex-wrap:wrap;gap:1rem}.pair>div{flex:1 1 480px}svg{max-width:100%;height:auto}
.muted{color:#666;font-size:.9rem}"""


def build_html(bins: list[dict], passages: list[dict], frame_jpeg: bytes | None, geometry, camera_id: str) -> str:
    """The report page, one self-contained HTML document (TrafficBin and VehiclePassage dicts with *_ms times)."""
    if not bins:
        raise ReportError(f"camera {camera_id!r}: no traffic bins to report")
    bins = sorted(bins, key=lambda r: (r["bin_start_ms"], r["lane_number"], r["lane"]))
    lanes = _lanes(bins, geometry)
    colours = {name: LANE_COLOURS[i % len(LANE_COLOURS)] for i, (name, _) in enumerate(lanes)}
    first, last = _utc(bins[0]["bin_start_ms"]), _utc(max(r["bin_end_ms"] for r in bins))
    statuses = Counter(r["status"] for r in bins)
    parts = [
        f"<h1>Traffic report: camera {html.escape(camera_id)}</h1>",
        f"<p class='muted'>{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC · {len(bins)} bins over "
        f"{len(lanes)} lanes · {len(passages)} vehicle passages · bins by status: "
        + ", ".join(f"{html.escape(s)} {n}" for s, n in sorted(statuses.items())) + "</p>",
        "<h2>Lanes</h2>", _summary_table(bins, lanes, colours),
    ]
    overlay = draw_geometry(frame_jpeg, geometry, colours)
    parts.append("<h2>Camera view</h2>")
    notes = []
    if not frame_jpeg:
        notes.append("No stored frame of this camera (the frame store's retention removed it): the geometry is drawn "
                     "on a blank canvas.")
    if not geometry:
        notes.append("No traffic geometry given (pass the camera file with <code>--cameras</code>): lanes, count "
                     "lines and detection zones are not drawn.")
    parts += [f"<p class='note'>{note}</p>" for note in notes]
    if overlay:
        parts.append("<figure class='frame'><img alt='camera view with lanes, count lines and detection zones' "
                     f"src='data:image/jpeg;base64,{base64.b64encode(overlay).decode()}'>"
                     "<figcaption>Lanes filled in their colours with their travel direction; detection zones outlined "
                     "in white; count lines with an arrow in their positive direction. Sample footage "
                     f"{CREDIT}.</figcaption></figure>")
    else:
        parts.append(f"<p class='muted'>Sample footage {CREDIT}.</p>")
    parts += ["<h2>Volume per lane</h2>",
              _time_series(bins, lanes, colours, lambda r: r["volume"], "vehicles per bin")]
    parts.append("<h2>Mean speed per lane</h2>")
    has_speeds = any(r.get("mean_speed_kmh") is not None for r in bins)
    if not any(r.get("speed_available") for r in bins):
        parts.append(f"<p class='note speeds-unavailable'>{SPEEDS_UNAVAILABLE}</p>")
    elif not has_speeds:
        parts.append("<p class='note'>No speeds measured in this period (no vehicles were counted).</p>")
    else:
        parts.append(_time_series(bins, lanes, colours, lambda r: r.get("mean_speed_kmh"), "mean speed (km/h)"))
    scatter, mix = _flow_occupancy(bins, lanes, colours), _class_mix(bins, lanes, colours)
    parts += ["<div class='pair'><div><h2>Flow and occupancy</h2>",
              scatter or "<p class='note'>Occupancy unavailable: the lanes have no detection zones, or no bin was "
                         "observed.</p>",
              "</div><div><h2>Class mix</h2>", mix or "<p class='note'>No vehicles counted in this period.</p>",
              "</div></div>"]
    histogram = _speed_histogram(passages, lanes, colours)
    parts += ["<h2>Count lines</h2>", _passages_table(passages)]
    if histogram:
        parts += ["<h3>Speeds at the count lines</h3>", histogram]
    parts += ["<h2>Bins</h2>", _bins_table(bins)]
    generated = datetime.datetime.now(datetime.UTC)
    parts.append(f"<p class='muted'>Generated by Vigil at {generated:%Y-%m-%d %H:%M} UTC. Flow = vehicles per bin "
                 "scaled to an hour. Bins not observed (camera offline, no data) are shaded and never counted as "
                 "zero.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Traffic report: {html.escape(camera_id)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def render_report(settings: Settings, camera_id: str, since, until, out_path: Path, geometry=None) -> Path:
    data = fetch(settings, camera_id, since, until)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(build_html(data.bins, data.passages, data.frame_jpeg, geometry, camera_id), encoding="utf-8")
    return out_path


def load_geometry(cameras_path: Path, camera_id: str):
    """The camera's traffic geometry from the camera file; ReportError when the file does not list the camera."""
    from vigil.cameras import CameraConfigError, load_cameras

    try:
        config = load_cameras(cameras_path)
    except CameraConfigError as exc:
        raise ReportError(str(exc)) from None
    camera = next((c for c in config.cameras if c.id == camera_id), None)
    if camera is None:
        raise ReportError(f"unknown camera {camera_id!r}: {cameras_path} lists {[c.id for c in config.cameras]}")
    return getattr(camera, "traffic", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil traffic-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", required=True)
    parser.add_argument("--since", required=True, help="start of the period (UTC, 'YYYY-MM-DD hh:mm:ss')")
    parser.add_argument("--until", required=True, help="end of the period, exclusive (UTC)")
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    parser.add_argument("--cameras", type=Path, help="camera file: draws the camera's lanes, count lines and zones")
    args = parser.parse_args(argv)
    try:
        geometry = load_geometry(args.cameras, args.camera) if args.cameras else None
        path = render_report(get_settings(), args.camera, args.since, args.until, args.out, geometry)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
