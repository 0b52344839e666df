"""`vigil stack up | status | down`: start, report and stop the embedded stack as one unit."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.stack.components import Broker, BrokerStore, Component, Flink, Health, Prometheus, Store, Triton
from app.stack.process import StackError
from vigil.config import Settings
from vigil.kafka_io import ensure_topics


@dataclass
class PartReport:
    name: str
    action: str  # started | already running | external | stopped | not running
    health: Health | None = None
    seconds: float = 0.0


def components(settings: Settings) -> list[Component]:
    """The parts `vigil stack` manages: a part Vigil can run without is left out when it is not embedded."""
    parts = [BrokerStore(settings), Broker(settings), Store(settings), Triton(settings), Prometheus(settings)]
    return [part for part in parts if part.required or part.embedded]


def up(settings: Settings, only: list[str] | None = None, log=print) -> list[PartReport]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reports: list[PartReport] = []
    started: list[Component] = []
    try:
        for part in components(settings):
            if only and part.name not in only and not (part.name == "broker-store" and "broker" in only):
                continue  # (the broker's store comes with the broker)
            begin = time.monotonic()
            if not part.embedded:
                health = part.health()
                if not health.ok:
                    raise StackError(f"external {part.name} is not healthy: {health.detail}")
                reports.append(PartReport(part.name, "external", health))
            elif part.process.running():
                reports.append(PartReport(part.name, "already running", part.wait_ready(settings.ready_timeout_s)))
            else:
                part.preflight()
                log(f"starting {part.name} ...")
                part.start()
                started.append(part)
                timeout = settings.triton_ready_timeout_s if part.name == "triton" else settings.ready_timeout_s
                health = part.wait_ready(timeout)
                reports.append(PartReport(part.name, "started", health, time.monotonic() - begin))
            if part.name == "broker":
                created = ensure_topics(settings)
                if created:
                    log(f"created topics: {', '.join(created)}")
                reports[-1].health = part.health()
            if part.name == "clickhouse":
                # a store that was already running (or an external server) may predate newer migrations
                from vigil.store.client import connect
                from vigil.store.migrate import apply_migrations

                applied = apply_migrations(connect(settings), ttl_days=settings.clickhouse_ttl_days)
                if applied:
                    log(f"applied migrations: {', '.join(applied)}")
                    reports[-1].health = part.health()
        if not only or "flink" in only:
            flink = Flink(settings).health()
            if not flink.ok:
                raise StackError(f"flink: {flink.detail}")
            reports.append(PartReport("flink", "ready", flink))
    except BaseException:
        for part in reversed(started):
            part.process.stop()
        raise
    return reports


def status(settings: Settings) -> list[PartReport]:
    reports = []
    for part in components(settings):
        if part.embedded and not part.process.running():
            reports.append(PartReport(part.name, "not running", Health(False, "not started (run `vigil stack up`)")))
            continue
        reports.append(PartReport(part.name, "external" if not part.embedded else "running", part.health()))
    reports.append(PartReport("flink", "on demand", Flink(settings).health()))
    return reports


def down(settings: Settings) -> list[PartReport]:
    reports = []
    for part in reversed(components(settings)):
        if not part.embedded:
            reports.append(PartReport(part.name, "external"))
            continue
        begin = time.monotonic()
        was_running = part.process.stop()
        reports.append(PartReport(part.name, "stopped" if was_running else "not running", seconds=time.monotonic() - begin))
    return reports
