"""`make demo`: the main job on the sample footage, end to end through the real embedded stack.

Starts the stack, runs sink, infer, ingest and the two PyFlink jobs (anomaly, re-ID) as separate processes (one per
role, as in production), streams the sample videos as seven paced cameras (the car park as recorded, three replays with
incidents cut in, three re-ID views of the person video) with a progress display, waits until every published frame has its detections
row in ClickHouse, prints a summary and example analyst queries, then stops everything it started.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import cookbook, reid_scenario, traffic_report
from app.scenarios import CAR_DETECTOR, CAR_TRAFFIC, CAR_ZONES, ROOM_ZONES, VIDEOS
from app.scenarios import build as build_scenarios
from app.stack import manager
from app.stack.process import free_port
from vigil.config import REPO_ROOT, Settings
from vigil.store.client import connect

JOBS = ("anomaly-job", "reid-job", "traffic-job")
CONSOLE_PORT = 18090
SUMMARY_QUERIES = {
    "frames": "SELECT camera_id, count() AS frames, sum(num_detections) AS detections, "
              "countIf(num_detections > 0) AS frames_with_objects FROM detections FINAL WHERE capture_ts >= {since:DateTime64(3)} GROUP BY camera_id ORDER BY camera_id",
    "classes": "SELECT d.camera_id, c.name AS class, count() AS detections FROM "
               "(SELECT camera_id, cls FROM detections FINAL ARRAY JOIN class_id AS cls WHERE capture_ts >= {since:DateTime64(3)}) AS d "
               "LEFT JOIN object_classes AS c ON c.class_id = d.cls GROUP BY d.camera_id, class ORDER BY d.camera_id, detections DESC",
    "tracks": "SELECT t.camera_id, c.name AS class, count() AS tracks, round(avg(dateDiff('millisecond', first_seen, last_seen)) / 1000, 1) "
              "AS mean_seconds_in_view FROM tracks AS t LEFT JOIN object_classes AS c ON c.class_id = t.class_id WHERE t.first_seen >= {since:DateTime64(3)} "
              "GROUP BY t.camera_id, class ORDER BY t.camera_id, tracks DESC",
    "latency": "SELECT hop, round(quantile(0.5)(ms)) AS p50_ms, round(quantile(0.95)(ms)) AS p95_ms FROM ("
               "SELECT ['1 capture -> FrameRef on Kafka', '2 capture -> detections on Kafka', '3 detections -> row in ClickHouse', "
               "'4 capture -> row in ClickHouse'] AS hops, "
               "[dateDiff('millisecond', capture_ts, ingest_ts), dateDiff('millisecond', capture_ts, inference_ts), "
               "dateDiff('millisecond', inference_ts, stored_ts), dateDiff('millisecond', capture_ts, stored_ts)] AS values "
               "FROM detections FINAL WHERE capture_ts >= {since:DateTime64(3)}) ARRAY JOIN hops AS hop, values AS ms GROUP BY hop ORDER BY hop",
    "incidents": "SELECT camera_id, kind, state, severity, formatDateTime(opened, '%H:%i:%S') AS opened_at, "
                 "if(cleared IS NULL, '', formatDateTime(cleared, '%H:%i:%S')) AS cleared_at, revision, zones, track_ids, "
                 "length(event_ids) AS raw_events FROM incidents_current WHERE opened >= {since:DateTime64(3)} ORDER BY opened",
    "matches": "SELECT global_id, from_camera_id AS from_camera, from_track_id AS from_track, to_camera_id AS to_camera, "
               "to_track_id AS to_track, round(transit_s, 1) AS transit_s, round(similarity, 3) AS similarity "
               "FROM reid_matches FINAL WHERE to_first_seen >= {since:DateTime64(3)} ORDER BY to_first_seen",
    "identities": "SELECT global_id, groupArray(camera_id) AS cameras, groupArray(track_id) AS tracks, "
                  "formatDateTime(min(first_seen), '%H:%i:%S') AS first_seen, formatDateTime(max(last_seen), '%H:%i:%S') AS last_seen "
                  "FROM (SELECT * FROM tracks_global WHERE first_seen >= {since:DateTime64(3)} ORDER BY first_seen) "
                  "WHERE global_id IN (SELECT global_id FROM reid_matches FINAL) GROUP BY global_id ORDER BY first_seen",
    "health": "SELECT camera_id, argMax(state, ts) AS last_state, max(frames_published) AS published, "
              "max(decode_errors) AS decode_errors, max(reconnects) AS reconnects FROM camera_status FINAL WHERE ts >= {since:DateTime64(3)} GROUP BY camera_id ORDER BY camera_id",
}

ANALYST_QUERIES = [
    ("Busiest 10-second intervals per camera (objects in view)",
     "SELECT camera_id, toStartOfInterval(capture_ts, INTERVAL 10 SECOND) AS t, max(num_detections) AS peak_objects, "
     "round(avg(num_detections), 2) AS mean_objects FROM detections FINAL WHERE capture_ts >= {since:DateTime64(3)} GROUP BY camera_id, t "
     "ORDER BY peak_objects DESC, t LIMIT 5"),
    ("Longest-visible tracks (dwell time)",
     "SELECT camera_id, track_id, class_id, first_seen, round(dateDiff('millisecond', first_seen, last_seen) / 1000, 1) "
     "AS seconds, detections FROM tracks WHERE first_seen >= {since:DateTime64(3)} ORDER BY seconds DESC LIMIT 5"),
    ("Where do cars enter and leave the car park view (entry/exit box centres, 100 px grid)",
     "SELECT intDiv(toUInt32((entry_box.1 + entry_box.3) / 2), 100) * 100 AS entry_x, "
     "intDiv(toUInt32((exit_box.1 + exit_box.3) / 2), 100) * 100 AS exit_x, count() AS tracks "
     "FROM tracks WHERE camera_id = 'car-park' AND class_id = 2 AND first_seen >= {since:DateTime64(3)} GROUP BY entry_x, exit_x ORDER BY tracks DESC"),
]


def _table(console: Console, title: str, result) -> None:
    table = Table(*result.column_names, title=title, title_justify="left")
    for row in result.result_rows:
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _print_evidence(console: Console, client, window: dict, stats_file: Path, wait_s: float = 60.0) -> None:
    """Each incident's snapshot and clip, once the evidence service wrote them (it waits for the post-roll)."""
    rows = client.query("SELECT incident_id, snapshot_uri, clip_uri FROM incidents_current "
                        "WHERE opened >= {since:DateTime64(3)} ORDER BY opened", parameters=window).result_rows
    if not rows:
        return
    deadline = time.monotonic() + wait_s
    with console.status("waiting for the evidence service's snapshots and clips ..."):
        while time.monotonic() < deadline:
            written = sum(1 for _, snapshot, clip in rows if _exists(snapshot) and _exists(clip))
            if written == len(rows):
                break
            time.sleep(1)
    for incident_id, snapshot, clip in rows:
        state = "" if _exists(clip) else " [yellow](not written yet)[/yellow]"
        console.print(f"  {incident_id}\n    snapshot [cyan]{snapshot.removeprefix('file://')}[/cyan]\n"
                      f"    clip     [cyan]{clip.removeprefix('file://')}[/cyan]{state}")
    counts = _read_json(stats_file)
    counts = counts.get("evidence", counts)  # the handler's counters, wherever the runtime nests them
    console.print(f"  evidence service: {counts.get('evidence_written', 0)} incidents' evidence written, "
                  f"{counts.get('clips_short', 0)} clips shorter than pre+post-roll")


METRIC_QUERIES = [  # (what, PromQL): what the demo reads back from its Prometheus
    ("frames published by ingest", 'sum(vigil_frames_total{stage="published"})'),
    ("frames sent to Triton", 'sum(vigil_frames_total{stage="inferred"})'),
    ("frames the motion gate let skip Triton", 'sum(vigil_frames_total{stage="gate skipped"})'),
    ("rows inserted into ClickHouse", "sum(vigil_rows_inserted_total)"),
    ("dead letters", "sum(vigil_dead_letters_total) or vector(0)"),
    ("Triton call p95 (s)", "histogram_quantile(0.95, sum by (le) (vigil_triton_call_seconds_bucket))"),
    ("capture → infer p95 (s)", 'histogram_quantile(0.95, sum by (le) (vigil_hop_latency_seconds_bucket{service="infer"}))'),
    ("capture → sink p95 (s)", 'histogram_quantile(0.95, sum by (le) (vigil_hop_latency_seconds_bucket{service="sink"}))'),
    ("incidents stored", 'sum(vigil_events_total{record="Incident"}) or vector(0)'),
    ("alerts firing", 'count(ALERTS{alertstate="firing"}) or vector(0)'),
]


def _print_metrics(console: Console, settings: Settings) -> None:
    """What the embedded Prometheus scraped from the demo's services (and where to look further)."""
    from vigil.metrics import prometheus_query

    if not settings.prometheus_embedded:
        return
    base = f"http://127.0.0.1:{settings.prometheus_port}"
    table = Table(title=f"Metrics scraped by Prometheus ({base}; rules: /alerts, graphs: /graph)")
    table.add_column("what")
    table.add_column("value", justify="right")
    time.sleep(2 * settings.prometheus_scrape_interval_s)  # the last samples
    for what, promql in METRIC_QUERIES:
        try:
            result = prometheus_query(settings, promql)
            value = f"{float(result[0]['value'][1]):.4g}" if result else "-"
        except Exception as exc:  # the demo goes on without Prometheus
            value = f"unavailable ({str(exc).splitlines()[0][:60]})"
        table.add_row(what, value)
    console.print(table)
    console.print(f"Ask Prometheus yourself: [cyan]curl -s '{base}/api/v1/query' --data-urlencode "
                  f"'query=sum by (camera) (rate(vigil_frames_total{{stage=\"published\"}}[1m]))'[/cyan]")


def _exists(uri: str) -> bool:
    from urllib.parse import urlparse

    return uri.startswith("file://") and Path(urlparse(uri).path).exists()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _expected_frames(path: Path, fps: float) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        native = float(stream.average_rate or 25)
        return int(stream.frames * min(1.0, fps / native)) or 1


def run_demo(settings: Settings, fps: float = 5.0, speed: float = 1.0, console: Console | None = None,
             keep_console: bool = False) -> int:
    console = console or Console()
    # SIGTERM (e.g. from a supervisor) unwinds like Ctrl-C, so everything started below is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    missing = [str(p) for p in (VIDEOS / "car-detection.mp4", VIDEOS / "one-by-one-person-detection.mp4") if not p.exists()]
    if missing:
        console.print(f"[red]sample footage missing: {missing}; the repo expects ../shared/data/videos beside it[/red]")
        return 2
    work = settings.data_dir / "demo"
    work.mkdir(parents=True, exist_ok=True)
    scenarios = {s.name: s for s in build_scenarios(work / "clips")}
    demo_cameras = [  # the car park as recorded, and replays with an incident cut into the footage
        ("car-park", scenarios["normal_cars"].path, CAR_ZONES, CAR_TRAFFIC),
        ("room-crowd", scenarios["crowd"].path, ROOM_ZONES, None),
        ("car-park-stopped", scenarios["stopped"].path, CAR_ZONES, CAR_TRAFFIC),
        ("car-park-wrong-way", scenarios["wrong_way"].path, CAR_ZONES, CAR_TRAFFIC),
    ]
    # three views of the person video, later and differently coloured, for cross-camera re-identification
    hall = reid_scenario.camera_config(reid_scenario.build(work / "reid-clips"), fps=fps, pace="native", speed=speed)
    demo_cameras += [(c["id"], Path(c["url"]), c["zones"], None) for c in hall["cameras"]]
    cameras_file = work / "cameras.yaml"
    cameras_file.write_text(yaml.safe_dump({"cameras": [
        {"id": cam, "url": str(path), "fps": fps, "pace": "native", "speed": speed, "zones": zones,
         **({"site": "hall"} if cam.startswith("hall-") else {}), **({"traffic": traffic} if traffic else {})}
        for cam, path, zones, traffic in demo_cameras], "links": hall["links"]}))
    stats = {name: work / f"{name}.json" for name in ("ingest", "infer", "reid", "sink", "evidence")}
    for path in stats.values():
        path.unlink(missing_ok=True)

    console.rule("[bold]Vigil demo: starting the embedded stack")
    begin = time.monotonic()
    for report in manager.up(settings, log=console.print):
        console.print(f"  {report.name:<10} {report.action:<16} {report.health.detail if report.health else ''}")
    console.print(f"  stack ready in {time.monotonic() - begin:.1f}s")
    if settings.prometheus_embedded:
        console.print(f"[bold]Metrics[/bold]: Prometheus at [cyan]http://127.0.0.1:{settings.prometheus_port}/[/cyan] "
                      "scrapes every service and Triton (alerts: /alerts); each service's own endpoint is listed "
                      f"in {settings.data_dir / 'prometheus' / 'targets'}")
    client = connect(settings)
    since = datetime.datetime.now(datetime.timezone.utc)  # this run's rows only: the store keeps earlier runs
    window = {"since": since}

    env = {**os.environ, "VIGIL_DATA_DIR": str(settings.data_dir), "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "VIGIL_TRITON_URL": settings.triton_url, "VIGIL_CLICKHOUSE_DSN": settings.clickhouse_dsn,
           "VIGIL_SINK_OUTPUTS": '["clickhouse", "datex2"]', "VIGIL_DATEX2_DIR": str(work / "datex2"),
           # the three car-park cameras replay one view: all are seen by its fine-tune (built by `make setup`)
           "VIGIL_DETECTOR_MODELS": json.dumps({"car-park*": CAR_DETECTOR}),
           # seven cameras, three Flink jobs and the whole stack on one small machine are past the 4 cameras that keep
           # up on 2 cores with the neural detector: the demo keeps every frame (latency grows) instead of dropping
           # late ones, so its counts and tracks are whole; the latency table says how far behind it ran
           "VIGIL_MAX_LAG_MS": "0",
           # a quarter of the frames' journeys as traces in otel_traces (every span of every frame would double the
           # store's insert load on this small machine)
           "VIGIL_TRACES_CLICKHOUSE": "true", "VIGIL_TRACE_SAMPLE_RATIO": "0.25"}
    logs = settings.log_dir
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, module: str, args: list[str]) -> None:
        # every service serves /metrics on a port of its own and registers it with the embedded Prometheus
        metrics_env = {"VIGIL_METRICS_PORT": str(free_port())} if module.startswith("services.") else {}
        with open(logs / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                           env={**env, **metrics_env}, cwd=REPO_ROOT)

    try:
        spawn("sink", "services.sink", ["--stats-file", str(stats["sink"])])
        spawn("infer", "services.infer", ["--stats-file", str(stats["infer"])])
        spawn("reid", "services.reid", ["--stats-file", str(stats["reid"])])  # re-ID embedding, behind detections
        spawn("evidence", "services.evidence", ["--stats-file", str(stats["evidence"])])  # incident snapshots, clips
        spawn("drift", "services.drift", [])  # each camera against its baseline (the demo's clips are shorter than one)
        spawn("anomaly-job", "jobs.anomaly", ["--cameras", str(cameras_file), "--checkpoint-dir", str(work / "checkpoints")])
        spawn("reid-job", "jobs.reid", ["--cameras", str(cameras_file), "--checkpoint-dir", str(work / "checkpoints-reid")])
        spawn("traffic-job", "jobs.traffic", ["--cameras", str(cameras_file), "--checkpoint-dir",
                                              str(work / "checkpoints-traffic")])
        # the operator console, before ingest so its tiles fill from the first frame
        from app.console_feed import start_console
        from services.console.users import UserStore

        users = settings.data_dir / "console" / "users.json"
        password = UserStore(users).add_generated("operator", "operator")
        procs["console"] = start_console({**env, "VIGIL_CONSOLE_PORT": str(CONSOLE_PORT),
                                          "VIGIL_CONSOLE_CAMERAS": str(cameras_file),
                                          "VIGIL_CONSOLE_USERS_FILE": str(users),
                                          "VIGIL_METRICS_PORT": str(free_port())}, logs / "console.log")
        console.print(f"[bold]Operator console[/bold]: [cyan]http://127.0.0.1:{CONSOLE_PORT}/[/cyan]  sign in as "
                      f"operator / {password} (live tiles, the incident queue, clips, verdicts)")
        with console.status("starting the PyFlink anomaly, re-ID and traffic jobs (local MiniClusters, ~30 s) ..."):
            time.sleep(30)
        for job in JOBS:
            if procs[job].poll() is not None:
                raise RuntimeError(f"the {job} exited; see {logs / (job + '.log')}")
        spawn("ingest", "services.ingest", ["--cameras", str(cameras_file), "--stats-file", str(stats["ingest"])])
        expected = {cam: _expected_frames(path, fps) for cam, path, _, _ in demo_cameras}
        console.rule(f"[bold]Streaming {len(demo_cameras)} cameras at {fps:g} fps sampled, {speed:g}x real time")
        with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            bars = {cam: progress.add_task(f"{cam}: frames published", total=n) for cam, n in expected.items()}
            stored = progress.add_task("detections in ClickHouse", total=sum(expected.values()))
            while procs["ingest"].poll() is None:
                ingest = _read_json(stats["ingest"])
                for cam, bar in bars.items():
                    progress.update(bar, completed=ingest.get(cam, {}).get("frames_published", 0))
                progress.update(stored, completed=_read_json(stats["sink"]).get("stored", {}).get("detections", 0))
                for name in ("sink", "infer", "reid", "evidence", "drift", *JOBS):
                    if procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited early; see {logs / (name + '.log')}")
                time.sleep(0.5)
            ingest = _read_json(stats["ingest"])
            published = sum(c["frames_published"] for c in ingest.values())
            for cam, bar in bars.items():
                n = ingest.get(cam, {}).get("frames_published", 0)
                progress.update(bar, completed=n, total=n)
            progress.update(stored, total=published)
            # infer works off its backlog after ingest ended (past 4 cameras on 2 cores it runs behind): wait while
            # rows keep arriving, and give up only after 90 s without a new one
            stalled_since, last_rows = time.monotonic(), -1
            while True:
                dropped = sum(_read_json(stats["infer"]).get("dropped", {}).values())
                dead = _read_json(stats["infer"]).get("dead_letters", 0)
                rows = client.query("SELECT count() FROM detections FINAL WHERE capture_ts >= {since:DateTime64(3)}", parameters=window).result_rows[0][0]
                progress.update(stored, completed=rows)
                if rows >= published - dropped - dead:
                    break
                if rows != last_rows:
                    stalled_since, last_rows = time.monotonic(), rows
                elif time.monotonic() - stalled_since > 90:
                    raise RuntimeError(f"only {rows} of {published} frames reached ClickHouse, none for 90 s; see "
                                       f"{logs / 'infer.log'} and {logs / 'sink.log'}")
                time.sleep(0.5)
        with console.status("waiting for the anomaly job's incidents ..."):
            incidents = ("car-park-stopped", "car-park-wrong-way", "room-crowd")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = client.query("SELECT uniqExact(camera_id) FROM incidents FINAL WHERE camera_id IN {c:Array(String)} AND opened >= {since:DateTime64(3)}",
                                     parameters={"c": list(incidents), **window}).result_rows[0][0]
                if found == len(incidents):
                    break
                time.sleep(1)
        with console.status("waiting for the re-ID job's cross-camera matches ..."):
            deadline, last, steady = time.monotonic() + 60, -1, 0
            while time.monotonic() < deadline and (_read_json(stats["reid"]).get("frames", 0)
                                                   < _read_json(stats["infer"]).get("processed", 0)):
                time.sleep(0.5)  # the embed service summarises the tracks after detection: let it catch up
            while time.monotonic() < deadline and steady < 8:  # until no new match for 8 s
                count = client.query("SELECT count() FROM reid_matches FINAL WHERE to_first_seen >= {since:DateTime64(3)}",
                                     parameters=window).result_rows[0][0]
                steady = steady + 1 if count == last and count > 0 else 0
                last = count
                time.sleep(1)
            time.sleep(1.0)  # let the last camera-status rows land
        with console.status("waiting for the traffic job's last bins ..."):
            # a camera's last bins close 10 s after its stream ended (the car clips end long before the hall views)
            cars = [cam for cam, *_, traffic in demo_cameras if traffic]
            deadline, last, steady = time.monotonic() + 40, -1, 0
            while time.monotonic() < deadline and steady < 5:
                bins = client.query("SELECT count(), uniqExact(camera_id) FROM traffic_bins FINAL WHERE camera_id IN "
                                    "{c:Array(String)} AND bin_end > {since:DateTime64(3)}",
                                    parameters={"c": cars, **window}).result_rows[0]
                steady = steady + 1 if bins[0] == last and bins[1] == len(cars) else 0
                last = bins[0]
                time.sleep(1)
        _print_metrics(console, settings)
        console.rule("[bold]What happened")
        console.print(f"{published} frames published by ingest, {rows} detection rows in ClickHouse, "
                      f"{dropped} dropped as stale, {dead} dead-lettered.")
        titles = {"frames": "Frames and detections per camera", "classes": "Detections per class",
                  "tracks": "Tracks", "latency": "Per-hop latency (capture -> Kafka -> ClickHouse)",
                  "incidents": "Incidents (incidents.v1: one per real-world event, from the anomaly job's raw events; "
                               "`vigil incidents`)",
                  "matches": "Cross-camera matches (ReidMatch on events.v1, from the PyFlink re-ID job)",
                  "identities": "Global identities across the hall cameras (tracks_global)",
                  "health": "Camera health (camera-status.v1)"}
        for key, sql in SUMMARY_QUERIES.items():
            _table(console, titles[key], client.query(sql, parameters=window))
            if key == "incidents":
                _print_evidence(console, client, window, stats["evidence"])
        from vigil.trace_store import TRACE_BUDGET

        _table(console, "car-park: per-hop latency budget from its frames' traces (otel_traces; ms after the "
               "frame's ingest span began)", client.query(TRACE_BUDGET, parameters={"c": "car-park", **window}))
        console.rule("[bold]Traffic data (traffic.v1, from the PyFlink traffic job)")
        _table(console, "Vehicles counted per count line, direction and class (VehiclePassage)", client.query(
            "SELECT p.camera_id, p.lane, p.line, if(p.direction > 0, 'with lane', 'AGAINST lane') AS direction, "
            "c.name AS class, count() AS vehicles, round(avg(p.speed_kmh), 1) AS mean_kmh FROM "
            "(SELECT * FROM vehicle_passages FINAL WHERE ts >= {since:DateTime64(3)}) AS p "
            "LEFT JOIN object_classes AS c ON c.class_id = p.class_id "
            "GROUP BY p.camera_id, p.lane, p.line, direction, class ORDER BY p.camera_id, p.lane, direction, class",
            parameters=window))
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        period = {"since": f"{since:%Y-%m-%d %H:%M:00}", "until": f"{until:%Y-%m-%d %H:%M:%S}"}  # whole bins
        _table(console, "car-park, per lane and minute (vigil sql --cookbook lane_minutes --camera car-park)",
               cookbook.run(client, "lane_minutes", "car-park", period["since"], period["until"]))
        try:
            report = traffic_report.render_report(settings, "car-park", period["since"],
                                                  until.strftime("%Y-%m-%d %H:%M:%S"), work / "traffic-car-park.html",
                                                  geometry=CAR_TRAFFIC)
            console.print(f"Traffic report page (lanes over the frame, volume, speed, flow-occupancy): [cyan]{report}[/cyan]")
        except traffic_report.ReportError as exc:
            console.print(f"[yellow]no traffic report: {exc}[/yellow]")
        console.print(f"DATEX II v3.7 MeasuredDataPublication per camera (what a traffic centre pulls): "
                      f"[cyan]{work / 'datex2' / 'car-park' / 'latest.xml'}[/cyan] (sites: sites.xml)")
        console.rule("[bold]Ask it yourself")
        for title, sql in ANALYST_QUERIES:
            shown = sql.replace("{since:DateTime64(3)}", f"'{since:%Y-%m-%d %H:%M:%S}'")
            console.print(f"[bold]{title}[/bold]\n  [cyan]vigil sql \"{shown}\"[/cyan]")
            _table(console, "", client.query(sql, parameters=window))
        console.print("The results stay in " + str(settings.chdb_path) + ". Query them later with:\n"
                      "  .venv/bin/vigil stack up --only clickhouse && .venv/bin/vigil sql \"SELECT ...\" && .venv/bin/vigil stack down\n"
                      "Tables: frames, detections (one row per frame, boxes as arrays), tracks (view), camera_status, "
                      "anomalies (raw events), incidents (every revision), incident_verdicts, incidents_current (view), "
                      "track_summaries, reid_matches, tracks_global (view), traffic_bins, vehicle_passages, dead_letters, otel_traces, "
                      "object_classes. "
                      "Use FINAL for exact counts after replays.\n"
                      "Search them by appearance with the re-ID API: .venv/bin/vigil reid-api --port 18080, then e.g.\n"
                      "  curl -s localhost:18080/identities/<global_id>/trajectory ; curl -s localhost:18080/transit ; "
                      "open http://127.0.0.1:18080/docs")
        if keep_console:
            console.print(f"The console stays up at [cyan]http://127.0.0.1:{CONSOLE_PORT}/[/cyan] "
                          f"(operator / {password}); Ctrl-C stops it and the stack.")
            try:
                while procs["console"].poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        for name in ("ingest", *JOBS, "infer", "reid", "evidence", "drift", "console", "sink"):
            proc = procs.get(name)
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        console.rule("[bold]Stopping")
        for report in manager.down(settings):
            console.print(f"  {report.name:<10} {report.action}")
