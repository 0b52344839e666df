"""Anomaly detection measured on real footage: scenarios with injected anomalies (vigil/scenarios.py) streamed as
cameras through ingest → infer (Triton) → the PyFlink anomaly job → events.v1, on a private embedded stack.

Reports per anomaly kind: recall (injections caught while they last or within 10 s after), false alarms per
camera-hour on normal playback, and latency from the injected start to the event's arrival on events.v1 (split into
the rule's own delay in event time and the pipeline's processing delay).

    .venv/bin/python load/eval_anomaly.py --out load/results/anomaly.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

from vigil.config import Settings  # noqa: E402
from app.scenarios import Scenario, build  # noqa: E402

TOLERANCE_S = 10.0


def run_scenarios(settings: Settings, scenarios: list[Scenario], work: Path, pace: str = "native", clock: str = "wall",
                  fps: float = 5.0, settle_s: float = 12.0, job_warmup_s: float = 25.0) -> dict:
    """Stream the scenarios through ingest/infer/sink and the anomaly job (subprocesses) on a running stack.
    Returns {"events": [(received_wall_ms, event)], "first_capture_ms": {camera: ms}}."""
    from load._harness import run_job_pipeline

    cameras = [{"id": s.name, "url": str(s.path), "fps": fps, "pace": pace, "clock": clock, "zones": s.zones,
                "detector": s.detector} for s in scenarios]
    return run_job_pipeline(settings, {"cameras": cameras}, work, "jobs.anomaly", "AnomalyEvent",
                            {"anomaly_registry": work / "registry"}, settle_s=settle_s, job_warmup_s=job_warmup_s)


def score(scenarios: list[Scenario], run: dict, clock: str) -> dict:
    """Recall, false alarms and latency per kind. Events are de-duplicated by event id (first arrival counts)."""
    seen, events = set(), []
    for received_ms, event in run["events"]:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            events.append((received_ms, event))
    kinds = sorted({k for s in scenarios for k in s.injected} | {e["kind"] for _, e in events})
    normal_hours = sum(s.seconds for s in scenarios if not s.injected) / 3600
    report = {}
    for kind in kinds:
        injections, caught, rule_delay, processing = 0, 0, [], []
        false_alarms = 0
        for scenario in scenarios:
            anchor = run["first_capture_ms"].get(scenario.name)
            mine = [(r, e) for r, e in events if e["camera_id"] == scenario.name and e["kind"] == kind]
            windows = scenario.injected.get(kind, [])
            matched = set()
            for start_s, end_s in windows:
                injections += 1
                start_ms, end_ms = anchor + start_s * 1000, anchor + (end_s + TOLERANCE_S) * 1000
                hits = [(r, e) for r, e in mine if start_ms <= e["window_end_ms"] <= end_ms]
                if hits:
                    caught += 1
                    r, e = min(hits, key=lambda hit: hit[1]["window_end_ms"])
                    rule_delay.append((e["window_end_ms"] - start_ms) / 1000)
                    if clock == "wall":
                        processing.append((r - e["window_end_ms"]) / 1000)
                    matched |= {id(h[1]) for h in hits}
            if not scenario.injected:
                false_alarms += len(mine)
        report[kind] = {
            "injections": injections, "caught": caught, "recall": round(caught / injections, 3) if injections else None,
            "false_alarms_on_normal": false_alarms,
            "false_alarms_per_camera_hour": round(false_alarms / normal_hours, 2) if normal_hours else None,
            "rule_delay_s": [round(v, 2) for v in rule_delay],
            "processing_delay_s": [round(v, 2) for v in processing],
            "latency_injected_start_to_event_s": [round(a + b, 2) for a, b in zip(rule_delay, processing)] if processing else None,
        }
    return {"normal_camera_hours": round(normal_hours, 4), "kinds": report,
            "events": [e for _, e in events]}


def main() -> int:
    from load._harness import machine, private_settings, stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args()
    settings = private_settings()
    scenarios = build(settings.data_dir / "scenarios")
    with stack(settings):
        from vigil.kafka_io import ensure_topics

        ensure_topics(settings)
        run = run_scenarios(settings, scenarios, settings.data_dir / "eval", pace="native", clock="wall", fps=args.fps)
    result = {"evaluation": "anomaly", "machine": machine(), "sampling_fps": args.fps, "pace": "native, real time",
              "scenarios": [{"name": s.name, "seconds": round(s.seconds, 1), "injected": s.injected} for s in scenarios],
              **score(scenarios, run, "wall")}
    save(args.out, result, shown={k: v for k, v in result.items() if k != "events"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
