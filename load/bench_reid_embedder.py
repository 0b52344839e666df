"""Embedder throughput: crops/s of the learned embedder (the TorchScript model the Triton `reid_learned` backend runs,
timed the way the backend calls it: uint8 crops → device → float → embeddings → host) at several batch sizes, of the
colour-histogram baseline, optionally through a running Triton over gRPC, and the trainer's steps/s.

Only needs torch, numpy and OpenCV for the in-process parts, so it also runs on a GPU machine without the platform:

    .venv/bin/python load/bench_reid_embedder.py --device cpu --out load/results/reid_embedder_cpu.json
    python3 load/bench_reid_embedder.py --device cuda --out $OUT/reid_embedder_gpu.json          # on a GPU host
    .venv/bin/python load/bench_reid_embedder.py --triton 127.0.0.1:18001 --out ...             # + gRPC path
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import numpy as np  # noqa: E402

from vigil.reid_embedding import CROP_H, CROP_W, colour_embedding  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "reid_learned" / "1" / "model.pt"


def timed(fn, seconds: float) -> tuple[int, float]:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls, time.perf_counter() - start


def bench_torch(device: str, batches: list[int], seconds: float) -> dict:
    import torch

    model = torch.jit.load(str(MODEL), map_location=device).eval()
    out = {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)

        def step():
            with torch.inference_mode():
                x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float()
                model(x).float().cpu().numpy()

        calls, elapsed = timed(step, seconds)
        out[str(batch)] = {"crops_per_s": round(calls * batch / elapsed, 1), "ms_per_batch": round(1000 * elapsed / calls, 3)}
    return out


def bench_colour(batches: list[int], seconds: float) -> dict:
    out = {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)
        calls, elapsed = timed(lambda: colour_embedding(crops), seconds)
        out[str(batch)] = {"crops_per_s": round(calls * batch / elapsed, 1)}
    return out


def bench_triton(url: str, model: str, batches: list[int], seconds: float) -> dict:
    from services.reid.embedder import TritonEmbedder

    embedder, out = TritonEmbedder(url, model), {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)
        calls, elapsed = timed(lambda: embedder.embed(crops), seconds)
        out[str(batch)] = {"crops_per_s": round(calls * batch / elapsed, 1), "ms_per_call": round(1000 * elapsed / calls, 2)}
    return out


def bench_training(device: str, steps: int) -> dict:
    from services.reid.learn import train_embedder

    rng = np.random.default_rng(0)
    tracks = {(f"cam-{c}", t): rng.integers(0, 255, (12, CROP_H, CROP_W, 3), dtype=np.uint8) for c in range(2) for t in range(20)}
    train_embedder(tracks, steps=3, device=device, log_every=0)  # warm-up (CUDA context, kernels)
    start = time.perf_counter()
    train_embedder(tracks, steps=steps, tracks_per_batch=16, device=device, log_every=0)
    elapsed = time.perf_counter() - start
    return {"steps": steps, "tracks_per_batch": 16, "steps_per_s": round(steps / elapsed, 2), "seconds": round(elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,8,32,64,256")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--triton", help="also time the Triton models over gRPC at this URL")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    result = {"benchmark": "reid_embedder", "device": args.device,
              "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or platform.machine(),
              "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "model": str(MODEL.relative_to(MODEL.parents[3])),
              "learned_in_process": bench_torch(args.device, batches, args.seconds),
              "colour_in_process_cpu": bench_colour([b for b in batches if b <= 64], args.seconds),
              "training": bench_training(args.device, args.train_steps)}
    if args.triton:
        result["triton_grpc"] = {m: bench_triton(args.triton, m, [b for b in batches if b <= 64], args.seconds)
                                 for m in ("reid_learned", "reid_color")}
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
