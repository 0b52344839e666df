"""The `vigil` command: stack control, SQL over the store, the services and the demo."""

from __future__ import annotations

import argparse
import re
import sys

from rich.console import Console
from rich.table import Table

from app.stack.process import StackError
from vigil.config import get_settings

console = Console(width=max(140, Console().width))


def _print_parts(reports, title: str) -> bool:
    table = Table(title=title)
    for column in ("part", "state", "healthy", "detail", "RSS MiB", "seconds"):
        table.add_column(column)
    all_ok = True
    for report in reports:
        health = report.health
        ok = health.ok if health else None
        all_ok &= ok is not False
        table.add_row(report.name, report.action, {True: "yes", False: "NO", None: "-"}[ok],
                      health.detail if health else "", f"{health.rss_mb:.0f}" if health and health.rss_mb else "",
                      f"{report.seconds:.1f}" if report.seconds else "")
    console.print(table)
    return all_ok


def cmd_stack(args) -> int:
    from app.stack import manager

    settings = get_settings()
    if args.action == "up":
        reports = manager.up(settings, only=args.only, log=console.print)
        _print_parts(reports, "vigil stack up")
        return 0
    if args.action == "check":
        from app.stack.flink_check import run_check

        result = run_check(settings)
        console.print(f"flink: {result.received}/{result.sent} records through KafkaSource → job → KafkaSink "
                      f"in {result.seconds:.1f}s: {'OK' if result.ok else 'FAILED'}\n{'' if result.ok else result.detail}")
        return 0 if result.ok else 1
    if args.action == "status":
        return 0 if _print_parts(manager.status(settings), "vigil stack status") else 1
    _print_parts(manager.down(settings), "vigil stack down")
    return 0


ROWS_QUERY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


def cmd_sql(args) -> int:
    """Read-only unless --write: every query carries readonly=1 (on the analyst DSN when one is configured), so the
    store itself refuses writes, DDL, settings changes and file()/url(). Values go in as --param, never into the
    text."""
    from clickhouse_connect.driver.exceptions import ClickHouseError
    from rich.markup import escape

    from vigil.redact import redact
    from vigil.store.client import connect

    parameters = {}
    for item in args.param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            console.print(f"[red]error:[/red] --param takes NAME=VALUE (for {{NAME:Type}} in the query), not {escape(item)!r}")
            return 2
        parameters[name] = value
    try:
        client = connect(get_settings(), read_only=not args.write)
        if args.cookbook:
            from app import cookbook

            if args.cookbook not in cookbook.COOKBOOK or not args.camera:
                console.print(f"[red]error:[/red] --cookbook takes one of {sorted(cookbook.COOKBOOK)} and needs --camera")
                return 2
            result = cookbook.run(client, args.cookbook, args.camera, args.since, args.until)
        elif args.query and args.write and not ROWS_QUERY.match(args.query):
            summary = client.command(args.query, parameters=parameters)
            console.print(f"done: {escape(str(summary))}")
            return 0
        elif args.query:
            result = client.query(args.query, parameters=parameters)
        else:
            console.print("[red]error:[/red] give a query or --cookbook NAME --camera ID")
            return 2
    except ClickHouseError as exc:
        text = str(exc)
        first = next((line.strip() for line in redact(text).splitlines() if "Code:" in line), redact(text).strip())
        hint = (" — `vigil sql` is read-only; --write runs it with write rights (on VIGIL_CLICKHOUSE_DSN)"
                if "READONLY" in text or "Code: 164" in text else "")
        console.print(f"[red]error:[/red] {escape(first[:500])}{hint}")
        return 1
    table = Table(*result.column_names)
    for row in result.result_rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"{len(result.result_rows)} rows")
    return 0


def cmd_store(args) -> int:
    from vigil.store.client import connect
    from vigil.store.migrate import apply_migrations

    settings = get_settings()
    applied = apply_migrations(connect(settings), ttl_days=settings.clickhouse_ttl_days)
    console.print(f"applied: {applied or 'nothing, already current'}")
    return 0


def cmd_demo(args) -> int:
    from app.demo import run_demo

    return run_demo(get_settings(), fps=args.fps, speed=args.speed, console=console, keep_console=args.console)


SERVICE_ENTRY_POINTS = {
    "ingest": "services.ingest.service", "infer": "services.infer.service", "reid-embed": "services.reid.service",
    "sink": "services.sink.service", "evidence": "services.evidence.service", "drift": "services.drift.service",
    "anomaly-train": "services.anomaly.train", "anomaly-job": "jobs.anomaly.__main__",
    "reid-job": "jobs.reid.__main__", "traffic-job": "jobs.traffic.__main__",
    "traffic-report": "app.traffic_report", "reid-train": "app.reid_build", "reid-api": "services.reid.api",
    "console": "services.console.app", "console-user": "services.console.users", "api-token": "vigil.auth",
}


def cmd_service(args) -> int:
    import importlib

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest  # the "--" main() put in front
    return importlib.import_module(SERVICE_ENTRY_POINTS[args.command]).main(rest)


def cmd_anomaly_approve(args) -> int:
    from vigil.model_registry import AnomalySettings, Registry

    registry = Registry(AnomalySettings().registry_root)
    registry.approve(args.camera, args.version)
    console.print(f"approved {args.camera} {args.version}; a running anomaly job picks it up within seconds")
    return 0


def cmd_review_export(args) -> int:
    from app.review import cmd_review_export as run

    return run(args, console)


def cmd_review_import(args) -> int:
    from app.review import cmd_review_import as run

    return run(args, console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="Streaming video analytics for traffic centres.")
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="start, report or stop the embedded stack")
    stack.add_argument("action", choices=["up", "status", "check", "down"],
                       help="check = run a PyFlink job that reads the broker with KafkaSource and writes with KafkaSink")
    stack.add_argument("--only", nargs="*", choices=["broker", "clickhouse", "triton", "flink"], help="start only these parts")
    stack.set_defaults(func=cmd_stack)
    sql = sub.add_parser("sql", help="run a SQL query against the store (read-only unless --write)")
    sql.add_argument("query", nargs="?")
    sql.add_argument("--cookbook", help="run a query of the analyst cookbook (README) by name")
    sql.add_argument("--camera", help="cookbook: the camera")
    sql.add_argument("--since", default="1970-01-01 00:00:00", help="cookbook: from (UTC)")
    sql.add_argument("--until", default="2100-01-01 00:00:00", help="cookbook: until (UTC)")
    sql.add_argument("--param", action="append", metavar="NAME=VALUE", help="a query parameter, for {NAME:Type} in "
                     "the query (repeat it); values never go into the SQL text")
    sql.add_argument("--write", action="store_true", help="allow writes (INSERT, ALTER, DDL): without it the query "
                     "runs with readonly=1 and the store refuses anything but reading")
    sql.set_defaults(func=cmd_sql)
    store = sub.add_parser("store", help="store administration")
    store.add_argument("action", choices=["migrate"])
    store.set_defaults(func=cmd_store)
    demo = sub.add_parser("demo", help="run the main job on the sample footage through the embedded stack")
    demo.add_argument("--fps", type=float, default=5.0, help="sampling rate per camera")
    demo.add_argument("--console", action="store_true", help="keep the operator console (and the stack) running "
                      "after the summary, until Ctrl-C")
    demo.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time; the anomaly rules "
                      "measure durations in capture time, so other speeds change what they see)")
    demo.set_defaults(func=cmd_demo)
    approve = sub.add_parser("anomaly-approve", help="approve a trained autoencoder version for a camera")
    approve.add_argument("--camera", required=True)
    approve.add_argument("--version", required=True)
    approve.set_defaults(func=cmd_anomaly_approve)
    export = sub.add_parser("review-export", help="write a camera's most uncertain frames with their predicted boxes "
                            "as COCO JSON for CVAT / Label Studio")
    export.add_argument("--camera", required=True)
    export.add_argument("--since", required=True, help="from, ISO 8601 (no zone = UTC), e.g. 2027-01-15T10:00:00Z")
    export.add_argument("--until", required=True, help="until (exclusive), ISO 8601")
    export.add_argument("--out", required=True, help="a new folder: annotations.json, images/, manifest.json")
    export.add_argument("--limit", type=int, default=None, help="frames to write (default VIGIL_REVIEW_LIMIT, 100)")
    export.set_defaults(func=cmd_review_export)
    review_import = sub.add_parser("review-import", help="put corrected COCO labels of a review export into the "
                                   "label store, ahead of pseudo-labels for the next adaptation")
    review_import.add_argument("--camera", required=True)
    review_import.add_argument("file", help="the corrected COCO JSON (CVAT 'COCO 1.0' or Label Studio export)")
    review_import.add_argument("--export", help="the folder review-export wrote (default: the folder of FILE)")
    review_import.set_defaults(func=cmd_review_import)
    from app.triton_gpu import add_commands as add_triton_gpu_commands

    add_triton_gpu_commands(sub)  # vigil triton-gpu-repo
    from app.adapt.cli import add_commands as add_adapt_commands
    from app.incidents import add_commands as add_incident_commands

    add_adapt_commands(sub)
    add_incident_commands(sub, console)
    from app.erase import add_commands as add_erase_commands

    add_erase_commands(sub, console)  # vigil erase
    for name, text in (("ingest", "run the ingest service"), ("infer", "run the inference service"),
                       ("reid-embed", "run the re-ID embed service (track summaries on tracks.v1)"),
                       ("sink", "run the ClickHouse sink"), ("anomaly-train", "train a camera's autoencoder"),
                       ("evidence", "run the evidence service (incident snapshots and clips in the frame store)"),
                       ("anomaly-job", "run the PyFlink anomaly job"), ("reid-job", "run the PyFlink re-ID job"),
                       ("traffic-job", "run the PyFlink traffic-data job"),
                       ("traffic-report", "write a camera's traffic report page (HTML)"),
                       ("reid-train", "train the learned re-ID embedder on stored tracks"),
                       ("reid-api", "serve the re-ID search API (FastAPI)"),
                       ("console", "serve the operator console (live tiles, incident queue, verdicts)"),
                       ("console-user", "add, list or remove operator-console users (argon2id hashes)"),
                       ("api-token", "issue, list or revoke bearer API tokens of the HTTP services (SHA-256 hashes)")):
        service = sub.add_parser(name, help=text, add_help=False)
        service.add_argument("rest", nargs=argparse.REMAINDER)
        service.set_defaults(func=cmd_service)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SERVICE_ENTRY_POINTS:
        # handed over whole: argparse's REMAINDER refuses a first argument that looks like an option (`--port`)
        argv = [argv[0], "--", *argv[1:]] if len(argv) > 1 else argv
    args = build_parser().parse_args(argv)
    from vigil.redact import install_log_redaction

    install_log_redaction()  # whatever a command logs, no credentials (README "Security")
    try:
        return args.func(args)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
