"""Traffic data measured on real footage and on synthetic tracks of known speed.

1. Counts: the car footage and the stopped / wrong-way scenario clips cut from it (app/scenarios.py) streamed as
   cameras through ingest → infer (Triton) → the PyFlink traffic job → traffic.v1, on a private embedded stack, against
   the hand count in load/traffic_ground_truth.json: accuracy per line and direction (matched count / true count,
   over-counts reported separately), plus the speeds measured for the real cars (plausibility: a car park).
2. Speeds: vehicles driven at known speeds through the car camera's calibration and through a perspective
   calibration, in process through the job's engine: error in km/h.

    .venv/bin/python load/eval_traffic.py --out load/results/traffic.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.scenarios import CAR_TRAFFIC, Scenario, build  # noqa: E402
from jobs.traffic.engine import TrafficEngine  # noqa: E402
from load._results import save  # noqa: E402
from vigil.config import Settings  # noqa: E402
from vigil.detections import DetectionFrame, Detections  # noqa: E402
from vigil.geometry import Calibration, CountLine, Lane, TrafficGeometry  # noqa: E402

GROUND_TRUTH = Path(__file__).resolve().parent / "traffic_ground_truth.json"
TRAFFIC_SCENARIOS = ("normal_cars", "stopped", "wrong_way")


def run_scenarios(settings: Settings, scenarios: list[Scenario], work: Path, pace: str = "fast", clock: str = "video",
                  fps: float = 5.0, job_warmup_s: float = 25.0) -> dict:
    """Stream the scenarios through ingest/infer/sink and the traffic job (subprocesses) on a running stack.
    Returns {"passages": [record], "bins": [record]} de-duplicated by id."""
    from load._harness import run_job_pipeline
    from vigil.topics import TRAFFIC

    cameras = [{"id": s.name, "url": str(s.path), "fps": fps, "pace": pace, "clock": clock, "zones": s.zones,
                "traffic": s.traffic, "detector": s.detector} for s in scenarios]
    # settle: the last bins close 10 s after a camera's last frame (ENDED grace), then the sink stores them
    run = run_job_pipeline(settings, {"cameras": cameras}, work, "jobs.traffic", "VehiclePassage", settle_s=35.0,
                           job_warmup_s=job_warmup_s, topic=TRAFFIC)
    passages = {r["passage_id"]: r for _, r in run["events"]}
    return {"passages": list(passages.values())}


def score_counts(passages: list[dict], truth: dict) -> dict:
    """Per scenario, line and direction: true count, measured count, matched = min of the two; accuracy over all."""
    measured = Counter((p["camera_id"], p["line"], p["direction"]) for p in passages)
    expected = Counter((scenario, c["line"], c["direction"]) for scenario, crossings in truth.items() for c in crossings)
    rows, per_lane = [], {}
    for key in sorted(set(measured) | set(expected)):
        scenario, line, direction = key
        rows.append({"scenario": scenario, "line": line, "direction": direction, "true": expected[key],
                     "measured": measured[key], "matched": min(expected[key], measured[key])})
        lane = per_lane.setdefault((line, direction), {"true": 0, "measured": 0, "matched": 0})
        for field in ("true", "measured", "matched"):
            lane[field] += rows[-1][field]
    total_true = sum(expected.values())
    matched = sum(r["matched"] for r in rows)
    over = sum(max(0, r["measured"] - r["true"]) for r in rows)
    return {"rows": rows,
            "per_line_direction": [{"line": line, "direction": direction, **v,
                                    "accuracy": round(v["matched"] / v["true"], 3) if v["true"] else None}
                                   for (line, direction), v in sorted(per_lane.items())],
            "true": total_true, "matched": matched, "over_counted": over,
            "accuracy": round(matched / total_true, 3) if total_true else None}


def synthetic_speed_errors(noise_px: float = 2.0, seed: int = 0) -> dict:
    """Vehicles at known speeds through (a) the car camera's calibration, (b) a road seen in perspective; the boxes
    jitter by `noise_px` (Gaussian, per frame and axis), as detector boxes do."""
    rng = np.random.default_rng(seed)
    perspective = Calibration(image_points=[(300, 700), (980, 700), (700, 200), (580, 200)],
                              ground_points_m=[(0, 0), (7, 0), (7, 60), (0, 60)])
    far_road = TrafficGeometry(
        lanes=[Lane(name="lane", number=1, polygon=[(300, 700), (980, 700), (700, 200), (580, 200)], direction=(0, -1))],
        count_lines=[CountLine(name="line", lane="lane", start=tuple(perspective.to_image(np.array([[0.0, 20.0]]))[0]),
                               end=tuple(perspective.to_image(np.array([[7.0, 20.0]]))[0]), positive=(0, -1))],
        calibration=perspective)
    cases = {"car camera (overhead)": (CAR_TRAFFIC, "lane-up", (4.5, 7.8), (4.5, -0.5), [8, 12, 15, 20, 30]),
             "perspective road": (far_road, "lane", (3.5, 2.0), (3.5, 45.0), [30, 50, 70, 90, 120])}
    out = {"noise_px": noise_px}
    for name, (geometry, lane, start_m, end_m, speeds) in cases.items():
        errors = []
        for track_id, speed in enumerate(speeds, start=1):
            engine = TrafficEngine("synthetic", geometry)
            distance = float(np.hypot(end_m[0] - start_m[0], end_m[1] - start_m[1]))
            duration_ms = distance / (speed / 3.6) * 1000
            passages = []
            for ts in np.arange(0, duration_ms, 200):  # 5 fps, as the pipeline samples
                f = ts / duration_ms
                ground = np.array([[start_m[0] + f * (end_m[0] - start_m[0]), start_m[1] + f * (end_m[1] - start_m[1])]])
                x, y = geometry.calibration.to_image(ground)[0] + rng.normal(0, noise_px, 2)
                detections = Detections(np.array([[x - 30, y - 60, x + 30, y]]), [0.9], [2], [track_id])
                passages += engine.observe(DetectionFrame("synthetic", 1_800_000_000_000 + int(ts), 1280, 720, detections))
            measured = [p["speed_kmh"] for p in passages if p["lane"] == lane and p["speed_kmh"] is not None]
            errors.append({"true_kmh": speed, "measured_kmh": round(measured[0], 2) if measured else None,
                           "error_kmh": round(abs(measured[0] - speed), 2) if measured else None})
        valid = [e["error_kmh"] for e in errors if e["error_kmh"] is not None]
        out[name] = {"vehicles": errors, "max_error_kmh": max(valid) if valid else None,
                     "measured": f"{len(valid)}/{len(errors)}"}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args()
    from load._harness import machine, private_settings, stack

    truth = {name: crossings for name, crossings in json.loads(GROUND_TRUTH.read_text())["scenarios"].items()}
    settings = private_settings()
    scenarios = [s for s in build(settings.data_dir / "scenarios") if s.name in TRAFFIC_SCENARIOS]
    with stack(settings):
        run = run_scenarios(settings, scenarios, settings.data_dir / "eval-traffic", fps=args.fps)
    speeds = sorted(round(p["speed_kmh"], 1) for p in run["passages"] if p["speed_kmh"] is not None)
    result = {"benchmark": "traffic", "machine": machine(), "fps": args.fps, "counts": score_counts(run["passages"], truth),
              "real_speeds_kmh": {"values": speeds, "note": "cars in a car park: expected roughly 5-20 km/h"},
              "synthetic_speeds": synthetic_speed_errors()}
    save(args.out, result)
    print(json.dumps({k: result[k] for k in ("counts", "real_speeds_kmh")}, indent=1)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
