"""`vigil incidents` (the queue from ClickHouse) and `vigil incident-verdict` (an operator's action on incidents.v1).

A verdict is an IncidentVerdict record on `incidents.v1`; the sink stores it in `incident_verdicts`, and the
`incidents_current` view shows every incident's latest revision with its latest verdict. A rejection needs a reason:
rejected incidents are counted per rule, zone and camera (`vigil incidents --noisiest`), the figure an operator tunes
thresholds with.
"""

from __future__ import annotations

import argparse
import time

from vigil.config import Settings

VERDICTS = ("acknowledged", "confirmed", "rejected")
SEVERITY_ORDER = "multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, 3)"


class IncidentError(ValueError):
    """A verdict that cannot be recorded: unknown incident, unknown verdict, a rejection without a reason."""


def verdict_record(incident: dict, verdict: str, actor: str, reason: str | None, decided_ms: int | None = None) -> dict:
    if verdict not in VERDICTS:
        raise IncidentError(f"unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}")
    if verdict == "rejected" and not (reason or "").strip():
        raise IncidentError("a rejection needs a reason (e.g. 'shadow', 'parked legally'): rejected incidents are "
                            "counted per rule and zone to tune thresholds")
    if not actor.strip():
        raise IncidentError("a verdict needs the actor (who decided)")
    decided_ms = decided_ms if decided_ms is not None else time.time_ns() // 1_000_000
    return dict(verdict_id=f"{incident['incident_id']}:{verdict}:{actor}:{decided_ms}",
                incident_id=incident["incident_id"], camera_id=incident["camera_id"], kind=incident["kind"],
                zones=list(incident["zones"]), verdict=verdict, reason=reason or None, actor=actor,
                decided_ms=decided_ms)


def current(client, incident_id: str) -> dict:
    result = client.query("SELECT incident_id, camera_id, kind, zones, state FROM incidents_current "
                          "WHERE incident_id = {id:String}", parameters={"id": incident_id})
    if not result.result_rows:
        raise IncidentError(f"no incident {incident_id!r} in the store (list them with `vigil incidents`)")
    return dict(zip(result.column_names, result.result_rows[0]))


def publish_verdict(settings: Settings, record: dict) -> None:
    from vigil.outputs.kafka import KafkaOutput
    from vigil.topics import INCIDENTS

    output = KafkaOutput(settings)
    try:
        output.write(INCIDENTS, "IncidentVerdict", record, key=record["camera_id"].encode(),
                     timestamp_ms=record["decided_ms"])
        if not output.flush():
            raise IncidentError(f"the broker at {settings.kafka_bootstrap} did not acknowledge the verdict")
    finally:
        output.close()


def queue(client, camera: str | None = None, kind: str | None = None, state: str | None = None, limit: int = 50):
    """Newest and most severe first, like the operator console's queue."""
    where, parameters = [], {}
    for column, value in (("camera_id", camera), ("kind", kind), ("state", state)):
        if value:
            where.append(f"{column} = {{{column}:String}}")
            parameters[column] = value
    sql = ("SELECT incident_id, state, ifNull(verdict, '') AS verdict, severity, camera_id, kind, zones, track_ids, "
           "opened, cleared, revision, snapshot_uri, clip_uri FROM incidents_current"
           + (f" WHERE {' AND '.join(where)}" if where else "")
           + f" ORDER BY cleared IS NOT NULL, {SEVERITY_ORDER}, opened DESC LIMIT {int(limit)}")
    return client.query(sql, parameters=parameters)


NOISIEST = """
SELECT kind, camera_id, arrayJoin(if(empty(zones), [''], zones)) AS zone, count() AS rejected,
       groupUniqArray(reason) AS reasons
FROM (SELECT * FROM incident_verdicts FINAL ORDER BY decided DESC LIMIT 1 BY incident_id)
WHERE verdict = 'rejected'
GROUP BY kind, camera_id, zone ORDER BY rejected DESC, kind
"""


def cmd_incidents(args, console) -> int:
    from rich.table import Table

    from vigil.config import get_settings
    from vigil.store.client import connect

    client = connect(get_settings())
    result = client.query(NOISIEST) if args.noisiest else queue(client, args.camera, args.kind, args.state, args.limit)
    table = Table(*result.column_names)
    for row in result.result_rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"{len(result.result_rows)} rows")
    return 0


def cmd_verdict(args, console) -> int:
    from vigil.config import get_settings
    from vigil.store.client import connect

    settings = get_settings()
    try:
        record = verdict_record(current(connect(settings), args.incident_id), args.verdict, args.actor, args.reason)
        publish_verdict(settings, record)
    except IncidentError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"{args.verdict}: {args.incident_id} (verdict {record['verdict_id']} on incidents.v1)")
    return 0


def add_commands(sub: argparse._SubParsersAction, console) -> None:
    listing = sub.add_parser("incidents", help="the incident queue (newest and most severe first), or --noisiest rules")
    listing.add_argument("--camera")
    listing.add_argument("--kind")
    listing.add_argument("--state", choices=["open", "updated", "cleared"])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--noisiest", action="store_true", help="rejections per rule, camera and zone")
    listing.set_defaults(func=lambda args: cmd_incidents(args, console))
    verdict = sub.add_parser("incident-verdict", help="acknowledge, confirm or reject an incident")
    verdict.add_argument("incident_id")
    verdict.add_argument("verdict", choices=VERDICTS)
    verdict.add_argument("--actor", required=True, help="who decides (a user name)")
    verdict.add_argument("--reason", help="why; required to reject")
    verdict.set_defaults(func=lambda args: cmd_verdict(args, console))
