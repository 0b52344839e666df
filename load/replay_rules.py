"""The anomaly rules on a video in process, no Kafka: detector (the model's own code and weights) → tracker, and
ingest's picture-quality figures (bad video, static regions) → RuleEngine with the scenario's zones. For tuning a rule's settings against the scenarios before the full pipeline
run of load/eval_anomaly.py; prints every event with its clip time.

    .venv/bin/python load/replay_rules.py --scenario stopped --scenario normal_cars [--fps 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from app.inprocess import detector as inprocess_detector  # noqa: E402
from app.scenarios import build, build_aid, build_bad_video  # noqa: E402
from jobs.anomaly.rules import RuleEngine  # noqa: E402
from services.ingest.quality import QualityMeter  # noqa: E402
from vigil.detections import DetectionFrame, VideoQuality  # noqa: E402
from vigil.sampling import Sampler  # noqa: E402
from vigil.tracker import ByteTracker, detect_and_track  # noqa: E402


def replay(scenario, fps: float = 5.0, default_detector: str = "yolox_nano") -> list[tuple[float, dict]]:
    model = inprocess_detector(scenario.detector or default_detector)
    tracker, engine, sampler, events = ByteTracker(), RuleEngine(scenario.name, scenario.zones), Sampler(fps), []
    meter = QualityMeter()
    with av.open(str(scenario.path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if not sampler.take(t):
                continue
            rgb = frame.to_ndarray(format="rgb24")
            tracked = detect_and_track(model, tracker, scenario.name, rgb)
            ts_ms = 1_700_000_000_000 + int(t * 1000)
            quality = VideoQuality.from_record(meter.measure(rgb[:, :, ::-1].copy(), ts_ms))
            for event in engine.observe(DetectionFrame(scenario.name, ts_ms, rgb.shape[1], rgb.shape[0], tracked,
                                                       quality)):
                events.append(((event["window_end_ms"] - 1_700_000_000_000) / 1000, event))
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", help="scenario names (default: all)")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vigil-replay-rules"))
    args = parser.parse_args()
    for scenario in build(args.work) + build_bad_video(args.work) + build_aid(args.work):
        if args.scenario and scenario.name not in args.scenario:
            continue
        events = replay(scenario, args.fps)
        print(f"{scenario.name}: injected {scenario.injected or 'nothing'}; {len(events)} events")
        for t, event in events:
            print(f"  {t:6.1f}s {event['kind']:<15} score {event['score']:.2f} tracks {event['track_ids']} "
                  f"zone {event['zone']} (from {(event['window_start_ms'] - 1_700_000_000_000) / 1000:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
