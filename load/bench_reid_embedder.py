"""Embedder throughput: crops/s and ms per crop of the trained embedders (the TorchScript models the Triton
`reid_learned` and `reid_pretrained` backends run, timed the way the backend calls them: uint8 crops → device → float
→ embeddings → host) at several batch sizes, of the colour-histogram baseline, optionally of all three through a
running Triton over gRPC, and the trainer's steps/s per trained embedder.

Only needs torch, numpy and OpenCV for the in-process parts, so it also runs on a GPU machine without the platform:

    .venv/bin/python load/bench_reid_embedder.py --device cpu --out load/results/reid_embedder_cpu.json
    python3 load/bench_reid_embedder.py --device cuda --out $OUT/reid_embedder_gpu.json          # on a GPU host
    .venv/bin/python load/bench_reid_embedder.py --triton 127.0.0.1:18001 --out ...             # + gRPC path

`--threads 1` on a busy 2-core CPU (as the Triton backends run): at 2 threads MobileNetV2's many small layers wait on
the other core at every layer and one batch-1 call took 8-950 ms while other work ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load._results import save  # noqa: E402

import numpy as np  # noqa: E402

from vigil.reid_embedding import CROP_H, CROP_W, colour_embedding  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1] / "models"
TRAINED = ("reid_learned", "reid_pretrained")
TRITON_MODELS = ("reid_learned", "reid_pretrained", "reid_color")


def timed(fn, seconds: float) -> tuple[int, float]:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls, time.perf_counter() - start


def _rates(batch: int, calls: int, elapsed: float) -> dict:
    return {"crops_per_s": round(calls * batch / elapsed, 1), "ms_per_crop": round(1000 * elapsed / (calls * batch), 3)}


def bench_torch(model_path: Path, device: str, batches: list[int], seconds: float) -> dict:
    import torch

    model = torch.jit.load(str(model_path), map_location=device).eval()
    out = {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)

        def step():
            with torch.inference_mode():
                x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float()
                model(x).float().cpu().numpy()

        calls, elapsed = timed(step, seconds)
        out[str(batch)] = _rates(batch, calls, elapsed) | {"ms_per_batch": round(1000 * elapsed / calls, 3)}
    return out


def bench_colour(batches: list[int], seconds: float) -> dict:
    out = {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)
        calls, elapsed = timed(lambda: colour_embedding(crops), seconds)
        out[str(batch)] = _rates(batch, calls, elapsed)
    return out


def bench_triton(url: str, model: str, batches: list[int], seconds: float) -> dict:
    from services.reid.embedder import TritonEmbedder

    embedder, out = TritonEmbedder(url, model), {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 255, (batch, CROP_H, CROP_W, 3), dtype=np.uint8)
        calls, elapsed = timed(lambda: embedder.embed(crops), seconds)
        out[str(batch)] = _rates(batch, calls, elapsed) | {"ms_per_call": round(1000 * elapsed / calls, 2)}
    embedder.close()
    return out


def bench_training(embedder: str, device: str, steps: int) -> dict:
    from services.reid.learn import train_embedder

    rng = np.random.default_rng(0)
    tracks = {(f"cam-{c}", t): rng.integers(0, 255, (12, CROP_H, CROP_W, 3), dtype=np.uint8) for c in range(2) for t in range(20)}
    train_embedder(tracks, steps=3, device=device, log_every=0, embedder=embedder)  # warm-up (CUDA context, kernels)
    start = time.perf_counter()
    train_embedder(tracks, steps=steps, tracks_per_batch=16, device=device, log_every=0, embedder=embedder)
    elapsed = time.perf_counter() - start
    return {"steps": steps, "tracks_per_batch": 16, "steps_per_s": round(steps / elapsed, 2), "seconds": round(elapsed, 1)}


def _threads(model: str) -> int | None:
    found = re.search(r'key:\s*"threads"\s*value:\s*\{\s*string_value:\s*"(\d+)"', (REPOSITORY / model / "config.pbtxt").read_text())
    return int(found.group(1)) if found else None


def _cpu_name() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        return names[0] if names else platform.machine()
    except OSError:
        return platform.processor() or platform.machine()


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
    # Only the models present (a GPU host may carry one), and only trainers whose network can be built there.
    models = {name: REPOSITORY / name / "1" / "model.pt" for name in TRAINED if (REPOSITORY / name / "1" / "model.pt").exists()}
    result = {"benchmark": "reid_embedder", "device": args.device,
              "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else _cpu_name(),
              "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "load_average_before": os.getloadavg(),
              "models": {name: str(path.relative_to(REPOSITORY.parent)) for name, path in models.items()},
              "torch_in_process": {name: bench_torch(path, args.device, batches, args.seconds) for name, path in models.items()},
              "colour_in_process_cpu": bench_colour([b for b in batches if b <= 64], args.seconds),
              "training": {}}
    for name in TRAINED:
        try:
            result["training"][name] = bench_training(name, args.device, args.train_steps)
        except RuntimeError as exc:  # the pretrained backbone's package is missing here
            result["training"][name] = {"skipped": str(exc)}
    if args.triton:
        # the backends' own torch thread setting (config.pbtxt), which the gRPC figures depend on
        result["triton_backend_threads"] = {m: _threads(m) for m in TRITON_MODELS}
        result["triton_grpc"] = {m: bench_triton(args.triton, m, [b for b in batches if b <= 64], args.seconds)
                                 for m in TRITON_MODELS}
    result["load_average_after"] = os.getloadavg()
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
