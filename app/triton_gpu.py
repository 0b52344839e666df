"""`vigil triton-gpu-repo`: a Triton model repository for a GPU Triton (an NGC tritonserver image, which has the
native onnxruntime backend with the TensorRT execution accelerator).

Each neural detector M (yolox_nano, nanodet_m, the per-camera fine-tunes `<base>__<camera>`) becomes two models:
- `M_onnx`: the network alone, platform `onnxruntime_onnx` on KIND_GPU with TensorRT (FP16 by default), its tensor
  names, types and dims read from M's ONNX; `1/model.onnx` is a link to that ONNX (never a copy).
- `M`: M's own config (the detector contract FRAMES + CAMERA_ID → BOXES/SCORES/CLASSES/COUNT, python backend,
  KIND_CPU) plus the parameter `raw_model: M_onnx`: models/yolox_nano/1/model.py letterboxes, sends the tensor to
  `M_onnx` with a BLS call, decodes and runs NMS on CPU. Clients and infer keep calling M.
Other models asked for (motion_detector, reid_*) are rendered unchanged: their config copied, their files linked.

`--device cpu` renders the same layout for a tritonserver without the onnxruntime backend (the embedded one here):
`M_onnx` is then a python-backend stand-in (models/onnx_runner/1/model.py, onnxruntime on CPU), so the BLS wiring can
be run and tested on a machine without a GPU. Links are absolute: a container must see the same paths.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from vigil.config import REPO_ROOT
from vigil.detector_models import is_adapted

DETECTOR_BASES = ("yolox_nano", "nanodet_m")
RAW_SUFFIX = "_onnx"
CODE = REPO_ROOT / "models"  # the model code linked into the rendered repository (this checkout's)
DETECTOR_CODE = CODE / "yolox_nano" / "1" / "model.py"
RUNNER_CODE = CODE / "onnx_runner" / "1" / "model.py"
MARKER = ".vigil-triton-repo"  # a folder holding this was rendered here and may be rendered again
WORKSPACE_BYTES = 1 << 30
ONNX_TO_TRITON = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "DOUBLE": "TYPE_FP64", "BFLOAT16": "TYPE_BF16",
                  "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                  "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64",
                  "BOOL": "TYPE_BOOL"}


class RenderError(ValueError):
    """A model that cannot be rendered (unknown, not set up, an unusable output folder), for the person running it."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's TYPE_*
    dims: tuple[int, ...]  # -1 where the ONNX dimension is symbolic or unknown

    def pbtxt(self) -> str:
        return f'{{ name: "{self.name}" data_type: {self.data_type} dims: [ {", ".join(map(str, self.dims))} ] }}'


def onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of an ONNX file as Triton sees them: graph inputs that are not initializers, graph outputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        type_name = onnx.TensorProto.DataType.Name(tensor.elem_type)
        if type_name not in ONNX_TO_TRITON:
            raise RenderError(f"{path}: tensor {value.name!r} has type {type_name}, which Triton has no type for")
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim)
        return TensorSpec(value.name, ONNX_TO_TRITON[type_name], dims)

    return [spec(i) for i in graph.input if i.name not in initializers], [spec(o) for o in graph.output]


def _versions(source: Path, model: str) -> list[int]:
    folder = source / model
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def available(source: Path) -> tuple[list[str], list[str]]:
    """(detector models, other models) in the source repository: the pretrained detectors and their fine-tunes, and
    every other folder with a config.pbtxt (rendered unchanged)."""
    from app.adapt.repository import adapted_models

    detectors = [m for m in DETECTOR_BASES if (source / m / "config.pbtxt").exists()]
    detectors += adapted_models(source, list(DETECTOR_BASES))
    others = sorted(p.name for p in source.iterdir() if p.is_dir() and (p / "config.pbtxt").exists()
                    and p.name not in detectors and not is_adapted(p.name)) if source.is_dir() else []
    return detectors, others


def default_models(source: Path) -> list[str]:
    return available(source)[0]


def detector_onnx(source: Path, model: str) -> tuple[int, Path]:
    """(served version, the real path of its ONNX) of a detector model."""
    from app.adapt.repository import served_version

    version = served_version(source, model) if is_adapted(model) else 1
    path = source / model / str(version) / "model.onnx"
    if version is None or not path.exists():
        raise RenderError(f"{model}: {path} is missing; run `make setup` (it links the pretrained ONNX from "
                          "../shared) or adapt the camera again")
    return version, path.resolve()


def raw_config(name: str, onnx_path: Path, device: str, precision: str, threads: str, trt_cache: str) -> str:
    inputs, outputs = onnx_signature(onnx_path)
    lines = [f"# {name}: the network of {name[:-len(RAW_SUFFIX)]} alone, rendered by `vigil triton-gpu-repo` from",
             f"# {onnx_path}; render again rather than edit.",
             f'name: "{name}"']
    if device == "gpu":
        lines.append('platform: "onnxruntime_onnx"')
    else:
        lines.append('# A python-backend stand-in (models/onnx_runner) for a tritonserver without onnxruntime_onnx.')
        lines.append('backend: "python"')
    fixed = all(t.dims[:1] == (1,) for t in inputs)
    batch = "the ONNX fixes the batch at 1" if fixed else "exact ONNX dims"
    lines += [f"max_batch_size: 0   # {batch}: one frame a call",
              "input [", ",\n".join(f"  {t.pbtxt()}" for t in inputs), "]",
              "output [", ",\n".join(f"  {t.pbtxt()}" for t in outputs), "]"]
    if device == "gpu":
        lines += ["instance_group [ { count: 1 kind: KIND_GPU } ]",
                  "optimization { execution_accelerators { gpu_execution_accelerator [ {",
                  '  name: "tensorrt"',
                  f'  parameters {{ key: "precision_mode" value: "{precision}" }}',
                  f'  parameters {{ key: "max_workspace_size_bytes" value: "{WORKSPACE_BYTES}" }}',
                  '  parameters { key: "trt_engine_cache_enable" value: "1" }',
                  f'  parameters {{ key: "trt_engine_cache_path" value: "{trt_cache}/{name}" }}',
                  "} ] } }"]
    else:
        lines += ["instance_group [ { count: 1 kind: KIND_CPU } ]",
                  f'parameters: {{ key: "threads" value: {{ string_value: "{threads}" }} }}']
    return "\n".join(lines) + "\n"


def detector_config(source: Path, model: str, raw_name: str) -> str:
    text = (source / model / "config.pbtxt").read_text()
    if re.search(r'key:\s*"raw_model"', text):
        raise RenderError(f"{model}: its config already has a raw_model (render from the project's models/, not from "
                          "a rendered repository)")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip("\n")
    header = (f"# {model}, rendered by `vigil triton-gpu-repo`: its own config plus raw_model. This python model\n"
              f"# letterboxes, sends the tensor to {raw_name} (BLS), decodes and runs NMS, on CPU.\n")
    return (header + body + "\n# The network runs in this Triton model:\n"
            f'parameters: {{ key: "raw_model" value: {{ string_value: "{raw_name}" }} }}\n')


def threads_of(config_text: str) -> str:
    match = re.search(r'key:\s*"threads"\s*value:\s*\{\s*string_value:\s*"(\d+)"', config_text)
    return match.group(1) if match else "1"


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target.resolve(), link)


def _prepare(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise RenderError(f"--out {out} is a file")
        entries = list(out.iterdir())
        if entries and not (out / MARKER).exists():
            raise RenderError(f"--out {out} is not empty and was not rendered by this command; give a new folder")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("rendered by `vigil triton-gpu-repo`; rendering again replaces everything here\n")


def render(source: Path, out: Path, models: list[str] | None = None, precision: str = "FP16", device: str = "gpu",
           trt_cache: str = "/tmp/vigil-trt-cache") -> list[str]:
    """Write the repository; returns one line per rendered model, for the person running it."""
    if device not in ("gpu", "cpu"):
        raise RenderError(f"--device {device!r}: use gpu or cpu")
    if precision not in ("FP16", "FP32"):
        raise RenderError(f"--precision {precision!r}: use FP16 or FP32")
    detectors, others = available(source)
    wanted = list(dict.fromkeys(models if models else detectors))
    unknown = [m for m in wanted if m not in detectors and m not in others]
    if unknown:
        raise RenderError(f"unknown model(s) {', '.join(unknown)} in {source}; choose from "
                          f"{', '.join(detectors + others)}")
    if not wanted:
        raise RenderError(f"no detector model in {source}; run `make setup`")
    plan = [(m, *detector_onnx(source, m)) for m in wanted if m in detectors]  # every check before writing
    _prepare(out)
    lines = []
    for model, version, onnx_path in plan:
        raw_name = model + RAW_SUFFIX
        config_text = (source / model / "config.pbtxt").read_text()
        (out / raw_name).mkdir()
        (out / raw_name / "config.pbtxt").write_text(
            raw_config(raw_name, onnx_path, device, precision, threads_of(config_text), trt_cache))
        _link(onnx_path, out / raw_name / str(version) / "model.onnx")
        if device == "cpu":
            _link(RUNNER_CODE, out / raw_name / str(version) / "model.py")
        (out / model).mkdir()
        (out / model / "config.pbtxt").write_text(detector_config(source, model, raw_name))
        _link(DETECTOR_CODE, out / model / str(version) / "model.py")
        _link(onnx_path, out / model / str(version) / "model.onnx")  # tensor names only; no session is made from it
        runs = (f"onnxruntime_onnx on GPU, TensorRT {precision}" if device == "gpu"
                else "python-backend onnxruntime stand-in on CPU")
        lines.append(f"{model} (python, CPU pre/post) → {raw_name} ({runs}) ← {onnx_path}")
    for model in (m for m in wanted if m in others):
        (out / model).mkdir()
        shutil.copyfile(source / model / "config.pbtxt", out / model / "config.pbtxt")
        for version in _versions(source, model):
            for item in (source / model / str(version)).iterdir():
                if item.name != "__pycache__":
                    _link(item, out / model / str(version) / item.name)
        lines.append(f"{model}: unchanged (config copied, files linked)")
    return lines


def cmd_triton_gpu_repo(args) -> int:
    from vigil.config import Settings

    source = Path(args.source) if args.source else Settings().model_repository
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        lines = render(source, Path(args.out), models, args.precision, args.device, args.trt_cache)
    except RenderError as exc:
        print(f"triton-gpu-repo: {exc}", file=sys.stderr)
        return 2
    print(f"rendered {args.out} ({args.device}):")
    for line in lines:
        print(f"  {line}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("triton-gpu-repo", help="write a model repository for a GPU Triton: each detector's "
                            "network in the native onnxruntime backend with TensorRT, pre/post-processing on CPU")
    parser.add_argument("--out", required=True, help="folder to write (new, or one this command rendered before)")
    parser.add_argument("--models", help="comma-separated models (default: yolox_nano, nanodet_m and every adapted "
                        "<detector>__<camera>); motion_detector and reid_* are rendered unchanged when named")
    parser.add_argument("--precision", choices=["FP16", "FP32"], default="FP16", help="TensorRT precision")
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="cpu: the same layout for a "
                        "tritonserver without the onnxruntime backend (a python stand-in runs the ONNX)")
    parser.add_argument("--source", help="model repository to render from (default VIGIL_MODEL_REPOSITORY, models/)")
    parser.add_argument("--trt-cache", default="/tmp/vigil-trt-cache", help="TensorRT engine cache folder on the "
                        "Triton host (one subfolder per model)")
    parser.set_defaults(func=cmd_triton_gpu_repo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.triton_gpu")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
