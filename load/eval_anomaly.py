"""Incident detection measured the way road agencies measure AID, on real footage: scenarios with injected anomalies
(app/scenarios.py; bad video too: frozen, blur, low_contrast, camera_moved; debris and queue too) streamed as cameras
through ingest → infer (Triton) → the PyFlink anomaly job → incidents.v1, on a private embedded stack.

Per kind: detection rate (DR: injections with an incident opened while they last or within 10 s after), incidents
per caught injection (1 = one incident per real-world event), false alarms per camera-hour on normal playback (FAR),
and time to detect from the injected start to the incident's arrival on incidents.v1 (split into the rule's own
delay in event time and the pipeline's processing delay; their mean is the MTTD). Incidents of a kind on a scenario
that injected another kind are counted too ("unexpected").

    .venv/bin/python load/eval_anomaly.py --out load/results/anomaly.json [--soak-minutes 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

from vigil.config import Settings  # noqa: E402
from app.scenarios import Scenario, build, build_aid, build_bad_video  # noqa: E402

TOLERANCE_S = 10.0


def run_scenarios(settings: Settings, scenarios: list[Scenario], work: Path, pace: str = "native", clock: str = "wall",
                  fps: float = 5.0, settle_s: float = 12.0, job_warmup_s: float = 25.0) -> dict:
    """Stream the scenarios through ingest/infer/sink and the anomaly job (subprocesses) on a running stack.
    Returns {"events": [(received_wall_ms, event)], "first_capture_ms": {camera: ms}}."""
    from load._harness import run_job_pipeline

    cameras = [{"id": s.name, "url": str(s.path), "fps": fps, "pace": pace, "clock": clock, "zones": s.zones,
                "detector": s.detector} for s in scenarios]
    from vigil.topics import INCIDENTS

    return run_job_pipeline(settings, {"cameras": cameras}, work, "jobs.anomaly", "Incident",
                            {"anomaly_registry": work / "registry"}, settle_s=settle_s, job_warmup_s=job_warmup_s,
                            topic=INCIDENTS)


def score(scenarios: list[Scenario], run: dict, clock: str) -> dict:
    """DR, FAR and time to detect per kind, from the incidents' first arrival (replayed revisions count once)."""
    seen, incidents = set(), []
    for received_ms, incident in run["events"]:
        if incident["incident_id"] not in seen:
            seen.add(incident["incident_id"])
            incidents.append((received_ms, incident))
    kinds = sorted({k for s in scenarios for k in s.injected} | {i["kind"] for _, i in incidents})
    normal_hours = sum(s.seconds for s in scenarios if not s.injected) / 3600
    report = {}
    for kind in kinds:
        injections, caught, per_caught, real_events, rule_delay, processing = 0, 0, [], [], [], []
        false_alarms = unexpected = 0
        for scenario in scenarios:
            anchor = run["first_capture_ms"].get(scenario.name)
            mine = [(r, i) for r, i in incidents if i["camera_id"] == scenario.name and i["kind"] == kind]
            if not scenario.injected:
                false_alarms += len(mine)
                continue
            matched = set()
            for start_s, end_s in scenario.injected.get(kind, []):
                injections += 1
                start_ms, end_ms = anchor + start_s * 1000, anchor + (end_s + TOLERANCE_S) * 1000
                # an incident's first revision: updated_ms is when its first event fired (capture time)
                hits = [(r, i) for r, i in mine if start_ms <= i["updated_ms"] <= end_ms]
                if hits:
                    caught += 1
                    per_caught.append(len(hits))
                    real_events.append(scenario.objects.get(kind, 1))
                    r, i = min(hits, key=lambda hit: hit[1]["updated_ms"])
                    rule_delay.append((i["updated_ms"] - start_ms) / 1000)
                    if clock == "wall":
                        processing.append((r - i["updated_ms"]) / 1000)
                    matched |= {h[1]["incident_id"] for h in hits}
            unexpected += sum(1 for _, i in mine if i["incident_id"] not in matched)
        detect = [a + b for a, b in zip(rule_delay, processing)] if processing else None
        report[kind] = {
            "injections": injections, "caught": caught,
            "detection_rate": round(caught / injections, 3) if injections else None,
            "incidents_per_caught_injection": per_caught,
            "real_events_per_caught_injection": real_events,
            "false_alarms_on_normal": false_alarms,
            "false_alarms_per_camera_hour": round(false_alarms / normal_hours, 2) if normal_hours else None,
            "unexpected_on_other_scenarios": unexpected,
            "rule_delay_s": [round(v, 2) for v in rule_delay],
            "processing_delay_s": [round(v, 2) for v in processing],
            "time_to_detect_s": [round(v, 2) for v in detect] if detect else None,
            "mttd_s": round(sum(detect) / len(detect), 2) if detect else None,
        }
    return {"normal_camera_hours": round(normal_hours, 4), "kinds": report,
            "incidents": [i for _, i in incidents]}


def soak_scenarios(scenarios: list[Scenario], minutes: float, out_dir: Path) -> list[Scenario]:
    """The normal clips looped to `minutes` each (concatenated, so the cameras are plain files), as more normal
    cameras: false alarms over a long run of normal traffic."""
    import av

    out_dir.mkdir(parents=True, exist_ok=True)
    soaks = []
    for scenario in [s for s in scenarios if not s.injected]:
        path = out_dir / f"soak-{scenario.name}.mp4"
        with av.open(str(scenario.path)) as source:
            stream = source.streams.video[0]
            rate, frames = stream.average_rate, [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
        repeats = max(1, int(minutes * 60 / (len(frames) / float(rate))))
        with av.open(str(path), "w") as container:
            out = container.add_stream("mpeg4", rate=rate)
            out.width, out.height, out.pix_fmt, out.options = frames[0].shape[1], frames[0].shape[0], "yuv420p", {"qscale": "3"}
            for _ in range(repeats):
                for image in frames:
                    for packet in out.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                        container.mux(packet)
            for packet in out.encode():
                container.mux(packet)
        soaks.append(Scenario(f"soak-{scenario.name}", path, scenario.zones, seconds=repeats * len(frames) / float(rate),
                              traffic=scenario.traffic, detector=scenario.detector))
    return soaks


def main() -> int:
    from load._harness import machine, private_settings, stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--soak-minutes", type=float, default=0.0,
                        help="play the normal clips looped to this long instead (one camera each): false alarms over a "
                             "long run of normal traffic")
    parser.add_argument("--only", action="append", help="scenario names to run (default: all)")
    parser.add_argument("--group", type=int, default=0,
                        help="stream this many scenarios (cameras) at a time, one group after another on the same "
                             "stack (default 0: all at once). The machine's sustainable camera count keeps the "
                             "processing delay what an operator would see at that load.")
    args = parser.parse_args()
    settings = private_settings()
    clips = settings.data_dir / "scenarios"
    scenarios = [s for s in build(clips) + build_bad_video(clips) + build_aid(clips)
                 if not args.only or s.name in args.only]
    if args.soak_minutes:  # the normal clips are replaced by their long loops
        soaks = soak_scenarios(scenarios, args.soak_minutes, settings.data_dir / "soak")
        scenarios = [s for s in scenarios if s.injected] + soaks
    with stack(settings):
        from vigil.kafka_io import ensure_topics

        ensure_topics(settings)
        size = args.group or len(scenarios)
        groups = [scenarios[i:i + size] for i in range(0, len(scenarios), size)]
        run = {"events": [], "first_capture_ms": {}}
        for number, group in enumerate(groups):
            print(f"group {number + 1}/{len(groups)}: {', '.join(s.name for s in group)}", flush=True)
            # each group on topics of its own: the job, reading from the earliest offsets, sees only this group
            group_settings = settings.model_copy(update={"topic_namespace": f"{settings.topic_namespace}g{number}."}) \
                if len(groups) > 1 else settings
            ensure_topics(group_settings)
            part = run_scenarios(group_settings, group, settings.data_dir / f"eval-{number}", pace="native",
                                 clock="wall", fps=args.fps)
            run["events"] += part["events"]
            run["first_capture_ms"].update(part["first_capture_ms"])
    result = {"evaluation": "anomaly", "machine": machine(), "sampling_fps": args.fps, "pace": "native, real time",
              "cameras_at_once": size,
              "scenarios": [{"name": s.name, "seconds": round(s.seconds, 1), "injected": s.injected} for s in scenarios],
              **score(scenarios, run, "wall")}
    save(args.out, result, shown={k: v for k, v in result.items() if k != "incidents"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
