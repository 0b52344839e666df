"""The motion gate's saving on the sample footage: each video fed in order at 5 fps through the gate, the camera's
detector (in process) and the tracker, as infer does; reports frames detected and skipped, and the share of
detector calls saved. Counts, not timings: they do not depend on the machine's load.

    .venv/bin/python load/measure_gate.py --out load/results/gate.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

from app.inprocess import detector as inprocess_detector  # noqa: E402
from app.scenarios import CAR_DETECTOR  # noqa: E402
from load._harness import FOOTAGE, machine  # noqa: E402
from services.infer.gate import MotionGate  # noqa: E402
from vigil.detections import Detections  # noqa: E402
from vigil.sampling import Sampler  # noqa: E402
from vigil.tracker import ByteTracker, detect_and_track  # noqa: E402


def measure(path: Path, model: str, fps: float) -> dict:
    import av

    detector, gate, tracker, sampler = inprocess_detector(model), MotionGate(), ByteTracker(), Sampler(fps)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if not sampler.take(frame.time):
                continue
            rgb = frame.to_ndarray(format="rgb24")
            if gate.needs_inference(path.name, round(frame.time * 1000), rgb, len(tracker.tracks)):
                detect_and_track(detector, tracker, path.name, rgb)
            else:
                tracker.update(Detections.empty())
    return {"video": path.name, "detector": model, **gate.stats()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    videos = [measure(FOOTAGE[0], CAR_DETECTOR, args.fps), measure(FOOTAGE[1], "yolox_nano", args.fps)]
    inferred, skipped = sum(v["gate_inferred"] for v in videos), sum(v["gate_skipped"] for v in videos)
    result = {"measurement": "motion_gate", "machine": machine(), "fps": args.fps, "videos": videos,
              "detector_calls_saved": round(skipped / (inferred + skipped), 3)}
    for v in videos:
        print(f"{v['video']}: {v['gate_inferred']} frames detected, {v['gate_skipped']} skipped "
              f"({v['gate_skipped_share']:.0%})")
    print(f"detector calls saved: {result['detector_calls_saved']:.0%}")
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
