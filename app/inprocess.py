"""Triton model code run in-process, without a server: for offline baselines, evaluation and building the learned
re-ID embedder from footage during set-up."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from vigil.config import REPO_ROOT
from vigil.detector_models import base_of


def load_model_module(name: str, version: str = "1", repository: Path | None = None):
    """Import a Triton model's model.py directly."""
    path = (repository or REPO_ROOT / "models") / name / version / "model.py"
    spec = importlib.util.spec_from_file_location(f"vigil_model_{name}_{version}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_parameters(name: str, repository: Path | None = None) -> dict:
    """The `parameters` of a model's config.pbtxt, as the Triton model sees them."""
    text = ((repository or REPO_ROOT / "models") / name / "config.pbtxt").read_text()
    return dict(re.findall(r'key:\s*"(\w+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))


def motion_detector():
    """The default detector, configured exactly as Triton configures it from its config.pbtxt."""
    module = load_model_module("motion_detector")
    defaults = module.MotionDetector.DEFAULTS
    params = {k: type(defaults[k])(v) for k, v in model_parameters("motion_detector").items() if k in defaults}
    return module.MotionDetector(**params)


NEURAL_DETECTORS = ("yolox_nano", "nanodet_m")


def pretrained_detector(name: str = "yolox_nano", version: str = "1", repository: Path | None = None,
                        onnx_path: Path | None = None, **overrides):
    """A neural detector model (pretrained, or a per-camera fine-tune such as yolox_nano__car-park) in-process, with
    the parameters of its config.pbtxt; `overrides` change them (e.g. conf_threshold for a precision/recall sweep);
    `onnx_path` runs other weights (a fine-tune not yet published) with that model's code and parameters."""
    repository = repository or REPO_ROOT / "models"
    module = load_model_module(name, version, repository)
    defaults = module.PretrainedDetector.DEFAULTS
    params = {k: v for k, v in model_parameters(name, repository).items() if k in defaults}
    path = onnx_path or repository / name / version / "model.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `make setup`")
    return module.PretrainedDetector(path, **{**params, **overrides})


def detector(name: str, **overrides):
    """Any detector of the model repository in-process, by its Triton model name."""
    if name == "motion_detector":
        return motion_detector()
    if base_of(name) not in NEURAL_DETECTORS:
        raise ValueError(f"unknown detector {name!r}: motion_detector, {', '.join(NEURAL_DETECTORS)} or an adapted "
                         "<detector>__<camera>")
    repository = REPO_ROOT / "models"
    versions = sorted((int(p.name) for p in (repository / name).iterdir() if p.name.isdigit()), reverse=True)
    return pretrained_detector(name, str(versions[0]), repository, **overrides)
