"""Erasure (GDPR article 17): remove what Vigil holds of one camera, or of one camera in one period, and say how
much of each kind it removed (`vigil erase`, app/erase.py).

What goes: the camera's frames and re-ID crops in the frame store, the snapshots and clips of its incidents, its
retention pins, and its rows in every ClickHouse table that holds them (`TABLES`; tests/app/test_erase.py fails when
a table with a camera column is neither here nor in `KEPT`). A period is [since, until) in capture time; a row counts
as in it by the time column below (a track by any overlap of its lifetime, a match by either of its two sides), and
an incident goes whole (its revisions, verdicts, snapshot and clip) when its clip can reach into the period: opened
within `CLIP_MARGIN_MS` of it.

What stays, on purpose: `clip_views` (the audit of who viewed which clip is the accountability record the erasure
itself answers to; it holds no pixels). What this cannot reach: records already on Kafka topics (frame references,
detections, events) expire with their topic's retention (frames.v1: 1 day), and a running ingest keeps storing the
camera's new frames: stop the camera (or take it off the camera file) first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.framestore import open_frame_store

# A clip runs VIGIL_EVIDENCE_PRE_ROLL_S before its incident opened to VIGIL_EVIDENCE_POST_ROLL_S after (10 s each by
# default); an incident opened within this margin of the period may show it.
CLIP_MARGIN_MS = 60_000
SINCE, UNTIL = "fromUnixTimestamp64Milli({since_ms:Int64})", "fromUnixTimestamp64Milli({until_ms:Int64})"

# table → (rows of the camera, rows of the camera in the period): fixed SQL fragments, values as {name:Type}.
TABLES: dict[str, tuple[str, str]] = {
    "frames": ("camera_id = {camera:String}", f"capture_ts >= {SINCE} AND capture_ts < {UNTIL}"),
    "detections": ("camera_id = {camera:String}", f"capture_ts >= {SINCE} AND capture_ts < {UNTIL}"),
    "camera_status": ("camera_id = {camera:String}", f"ts >= {SINCE} AND ts < {UNTIL}"),
    "anomalies": ("camera_id = {camera:String}", f"window_start >= {SINCE} AND window_start < {UNTIL}"),
    "track_summaries": ("camera_id = {camera:String}", f"first_seen < {UNTIL} AND last_seen >= {SINCE}"),
    "reid_matches": ("(from_camera_id = {camera:String} OR to_camera_id = {camera:String})",
                     f"((from_camera_id = {{camera:String}} AND from_last_seen >= {SINCE} "
                     f"AND from_last_seen < {UNTIL}) OR (to_camera_id = {{camera:String}} "
                     f"AND to_first_seen >= {SINCE} AND to_first_seen < {UNTIL}))"),
    "traffic_bins": ("camera_id = {camera:String}", f"bin_start >= {SINCE} AND bin_start < {UNTIL}"),
    "vehicle_passages": ("camera_id = {camera:String}", f"ts >= {SINCE} AND ts < {UNTIL}"),
    "traffic_rollups": ("camera_id = {camera:String}", f"period_start >= {SINCE} AND period_start < {UNTIL}"),
    "incidents": ("camera_id = {camera:String}", "incident_id IN {incident_ids:Array(String)}"),
    "incident_verdicts": ("camera_id = {camera:String}", "incident_id IN {incident_ids:Array(String)}"),
    "otel_traces": ("SpanAttributes['camera.id'] = {camera:String}",
                    f"Timestamp >= {SINCE} AND Timestamp < {UNTIL}"),
}
# Tables with a camera column that erasure keeps, and why.
KEPT = {"clip_views": "the audit of who viewed which clip: the accountability record, no pixels"}
INCIDENTS_TOUCHING = (
    "SELECT DISTINCT incident_id, snapshot_uri, clip_uri FROM incidents WHERE camera_id = {camera:String} "
    "AND opened >= fromUnixTimestamp64Milli({since_ms:Int64} - {margin_ms:Int64}) "
    "AND opened < fromUnixTimestamp64Milli({until_ms:Int64} + {margin_ms:Int64})")
CRUMB = ".track."  # the re-ID stage stores a track's best crop as <last seen>-<track>.track.jpg beside the frames


@dataclass
class Erasure:
    """What one erasure removed (or, with dry_run, would remove)."""

    camera_id: str
    since_ms: int | None
    until_ms: int | None
    rows: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    crops: int = 0
    evidence: int = 0
    pins: int = 0
    dry_run: bool = False

    def total(self) -> int:
        return sum(self.rows.values()) + self.frames + self.crops + self.evidence + self.pins


def _where(table: str, period: bool) -> str:
    camera, in_period = TABLES[table]
    return f"{camera} AND {in_period}" if period else camera


def _count(client, table: str, period: bool, parameters: dict) -> int:
    return int(client.query(f"SELECT count() FROM {table} WHERE {_where(table, period)}",
                            parameters=parameters).result_rows[0][0])


def _delete(client, table: str, period: bool, parameters: dict) -> None:
    # ALTER TABLE ... DELETE is a mutation on every ClickHouse; mutations_sync=2 waits until it is done everywhere,
    # so a report that says "removed" is true when it is printed.
    client.command(f"ALTER TABLE {table} DELETE WHERE {_where(table, period)}", parameters=parameters,
                   settings={"mutations_sync": 2})


def erase(client, frame_store_uri: str, camera_id: str, since_ms: int | None = None, until_ms: int | None = None,
          dry_run: bool = False) -> Erasure:
    """Remove the camera's frames, crops, evidence, pins and rows (of [since_ms, until_ms) when given; both or
    neither). `client`: a writable clickhouse-connect client. Returns the counts."""
    if (since_ms is None) != (until_ms is None):
        raise ValueError("give both since and until, or neither (the whole camera)")
    if since_ms is not None and since_ms >= until_ms:
        raise ValueError(f"since ({since_ms}) must be before until ({until_ms})")
    period = since_ms is not None
    report = Erasure(camera_id, since_ms, until_ms, dry_run=dry_run)
    existing = {row[0] for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
                .result_rows}
    parameters = {"camera": camera_id, "since_ms": since_ms or 0, "until_ms": until_ms or 0,
                  "margin_ms": CLIP_MARGIN_MS}
    incidents = client.query(INCIDENTS_TOUCHING, parameters=parameters).result_rows if period else []
    parameters["incident_ids"] = [row[0] for row in incidents]
    for table in (t for t in TABLES if t in existing):
        report.rows[table] = _count(client, table, period, parameters)
        if report.rows[table] and not dry_run:
            _delete(client, table, period, parameters)

    store = open_frame_store(frame_store_uri)
    if period:
        evidence = sorted({uri for _, *uris in incidents for uri in uris if uri and store.exists(uri)})
    else:
        evidence = store.evidence_keys(camera_id)
    pins = [pin for pin in store.pins() if pin.camera_id == camera_id
            and (not period or pin.overlaps(camera_id, since_ms, until_ms - 1))]
    names = store.delete_frames(camera_id, since_ms, None if until_ms is None else until_ms - 1, dry_run)
    if not dry_run:
        for uri in evidence:
            store.delete_object(uri)
        for pin in pins:
            store.unpin(pin.pin_id)
    report.crops = sum(CRUMB in name for name in names)
    report.frames = len(names) - report.crops
    report.evidence, report.pins = len(evidence), len(pins)
    return report
