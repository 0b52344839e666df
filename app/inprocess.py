"""Triton model code run in-process, without a server: for offline baselines, evaluation and building the learned
re-ID embedder from footage during set-up."""

from __future__ import annotations

import importlib.util
import re

from vigil.config import REPO_ROOT


def load_model_module(name: str):
    """Import a Triton model's model.py directly."""
    path = REPO_ROOT / "models" / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"vigil_model_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_parameters(name: str) -> dict:
    """The `parameters` of a model's config.pbtxt, as the Triton model sees them."""
    text = (REPO_ROOT / "models" / name / "config.pbtxt").read_text()
    return dict(re.findall(r'key:\s*"(\w+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))


def motion_detector():
    """The default detector, configured exactly as Triton configures it from its config.pbtxt."""
    module = load_model_module("motion_detector")
    defaults = module.MotionDetector.DEFAULTS
    params = {k: type(defaults[k])(v) for k, v in model_parameters("motion_detector").items() if k in defaults}
    return module.MotionDetector(**params)
