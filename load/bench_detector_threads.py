"""The default detector's network in onnxruntime at 1 and 2 intra-op threads, with and without spin-waiting: wall
time and CPU time per frame, frames fed with idle gaps as a paced pipeline feeds them. Why the CPU models run one
thread per instance (models/yolox_nano/config.pbtxt): on 2 shared cores the CPU a frame costs decides how many
cameras fit, and spin-waiting threads burn it while they wait.

    .venv/bin/python load/bench_detector_threads.py --out load/results/detector-threads.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import av  # noqa: E402
import onnxruntime as ort  # noqa: E402

from app.inprocess import load_model_module  # noqa: E402
from load._harness import FOOTAGE, machine  # noqa: E402
from vigil.config import REPO_ROOT  # noqa: E402

MODEL = REPO_ROOT / "models" / "yolox_nano"
letterbox = load_model_module("yolox_nano").letterbox  # the model's own pre-processing


def frames(count: int) -> list:
    tensors = []
    with av.open(str(FOOTAGE[0])) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 6 == 0:
                tensors.append(letterbox(frame.to_ndarray(format="rgb24"), "yolox")[0])
            if len(tensors) >= count:
                break
    return tensors


def measure(tensors, threads: int, spinning: bool, gap_s: float) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(MODEL / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for tensor in tensors[:5]:
        session.run(None, {name: tensor})
    walls, cpu_began = [], time.process_time()
    for tensor in tensors:
        began = time.perf_counter()
        session.run(None, {name: tensor})
        walls.append(time.perf_counter() - began)
        time.sleep(gap_s)
    cpu = time.process_time() - cpu_began  # the sleeps cost no CPU, spinning after a run does
    walls.sort()
    return {"threads": threads, "spinning": spinning, "wall_ms_p50": round(walls[len(walls) // 2] * 1000, 1),
            "wall_ms_mean": round(sum(walls) / len(walls) * 1000, 1),
            "cpu_ms_per_frame": round(cpu / len(tensors) * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=20, help="idle time between frames")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    tensors = frames(args.frames)
    rows = [measure(tensors, threads, spinning, args.gap_ms / 1000) for threads in (1, 2) for spinning in (True, False)]
    save(args.out, {"benchmark": "detector_threads", "machine": machine(), "model": "yolox_nano", "frames": len(tensors),
                    "gap_ms": args.gap_ms, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
