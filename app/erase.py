"""`vigil erase --camera ID [--since T --until T] [--dry-run]`: GDPR erasure of a camera, or of a camera's period,
from the frame store and ClickHouse (vigil/erasure.py), with a report of what it removed."""

from __future__ import annotations

import argparse

from rich.table import Table

from app.review import ReviewError, iso, parse_time
from vigil.config import get_settings
from vigil.erasure import KEPT, erase


def cmd_erase(args, console) -> int:
    from vigil.store.client import connect

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ReviewError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if (since is None) != (until is None):
        console.print("[red]error:[/red] give --since and --until together (a period), or neither (the whole camera)")
        return 2
    settings = get_settings()
    try:
        report = erase(connect(settings), settings.frame_store_uri, args.camera, since, until, dry_run=args.dry_run)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    period = f"{iso(since)} to {iso(until)}" if since is not None else "all time"
    verb = "would remove" if args.dry_run else "removed"
    table = Table("what", "where", verb, title=f"vigil erase: camera {args.camera}, {period}")
    table.add_row("frames", "frame store", str(report.frames))
    table.add_row("re-ID crops", "frame store", str(report.crops))
    table.add_row("snapshots and clips", "frame store (_evidence)", str(report.evidence))
    table.add_row("retention pins", "frame store (_pins)", str(report.pins))
    for name, count in report.rows.items():
        table.add_row("rows", f"ClickHouse {name}", str(count))
    console.print(table)
    console.print(f"{verb} {report.total()} items; kept on purpose: " +
                  "; ".join(f"{table_name} ({why})" for table_name, why in KEPT.items()) +
                  ". Records on Kafka topics expire with their topics' retention.")
    return 0


def add_commands(sub: argparse._SubParsersAction, console) -> None:
    parser = sub.add_parser("erase", help="erase a camera's frames, clips and rows (all, or one period): GDPR erasure")
    parser.add_argument("--camera", required=True)
    parser.add_argument("--since", help="from (ISO 8601, no zone = UTC), with --until; default: all time")
    parser.add_argument("--until", help="until (exclusive), ISO 8601")
    parser.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")
    parser.set_defaults(func=lambda args: cmd_erase(args, console))
