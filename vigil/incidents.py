"""Incidents as the operator sees them, shared by `vigil incidents` / `vigil incident-verdict` (app/incidents.py) and the
operator console (services/console): the queue from ClickHouse, the noisiest rules, and verdicts on incidents.v1.

A verdict is an IncidentVerdict record on `incidents.v1`; the sink stores it in `incident_verdicts`, and the
`incidents_current` view shows every incident's latest revision with its latest verdict. A rejection needs a reason:
rejected incidents are counted per rule, zone and camera (`NOISIEST`), the figure an operator tunes thresholds with.
"""

from __future__ import annotations

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


def queue(client, camera: str | None = None, kind: str | None = None, state: str | None = None, limit: int = 50,
          cameras: list[str] | None = None):
    """Newest and most severe first, like the operator console's queue; `cameras`: only those (a console's scope)."""
    where, parameters = [], {}
    for column, value in (("camera_id", camera), ("kind", kind), ("state", state)):
        if value:
            where.append(f"{column} = {{{column}:String}}")
            parameters[column] = value
    if cameras is not None:
        where.append("camera_id IN {scope:Array(String)}")
        parameters["scope"] = list(cameras)
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
