"""`vigil incidents` (the queue from ClickHouse) and `vigil incident-verdict` (an operator's action on incidents.v1).

A verdict is an IncidentVerdict record on `incidents.v1`; the sink stores it in `incident_verdicts`, and the
`incidents_current` view shows every incident's latest revision with its latest verdict. A rejection needs a reason:
rejected incidents are counted per rule, zone and camera (`vigil incidents --noisiest`), the figure an operator tunes
thresholds with.
"""

from __future__ import annotations

import argparse

from vigil.incidents import (NOISIEST, SEVERITY_ORDER, VERDICTS, IncidentError, current, publish_verdict, queue,  # noqa: F401
                             verdict_record)


def cmd_incidents(args, console) -> int:
    from rich.table import Table

    from vigil.config import get_settings
    from vigil.store.client import connect

    client = connect(get_settings(), read_only=True)
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
        record = verdict_record(current(connect(settings, read_only=True), args.incident_id), args.verdict, args.actor, args.reason)
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
