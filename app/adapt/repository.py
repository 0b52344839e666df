"""Per-camera detector models in the Triton model repository: versioned, switched live, rolled back.

A camera's fine-tune is its own Triton model, `<base>__<name>` (e.g. `yolox_nano__car-park`), whose config is the
base model's with its name changed. Each adaptation adds a version folder (1, 2, ...) with the exported
`model.onnx`, the base's `model.py` and a `metadata.json` (what it was trained on, its validation). The config's
`version_policy` says which version Triton serves: `latest` (the newest, the default) or `specific` (after a
rollback). A running Triton (explicit model control, as the embedded stack runs it) is told to load the model
again: it switches to the version the policy names without a restart, and every older version stays on disk.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from vigil.detector_models import adapted_name, base_of, is_adapted

POLICY = re.compile(r"version_policy:\s*\{[^{}]*(\{[^{}]*\})?[^{}]*\}")


class RepositoryError(ValueError):
    """A model or version that does not exist, with a message for the person running the command."""


def versions(repository: Path, model: str) -> list[int]:
    folder = repository / model
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "model.onnx").exists())


def adapted_models(repository: Path, bases: list[str]) -> list[str]:
    """The per-camera models of these base models present in the repository (with at least one version)."""
    if not repository.is_dir():
        return []
    return sorted(p.name for p in repository.iterdir()
                  if is_adapted(p.name) and base_of(p.name) in bases
                  and (p / "config.pbtxt").exists() and versions(repository, p.name))


def _config_text(repository: Path, base: str, model: str) -> str:
    text = (repository / base / "config.pbtxt").read_text()
    text = re.sub(r'^name:\s*"[^"]*"', f'name: "{model}"', text, count=1, flags=re.MULTILINE)
    header = (f"# Per-camera fine-tune of {base}, written by `vigil detector-adapt`; versions are its adaptations.\n"
              "# `vigil detector-rollback` sets the served version (version_policy).\n")
    return header + "\n".join(line for line in text.splitlines() if not line.startswith("#")) + "\n"


def set_policy(repository: Path, model: str, version: int | None) -> None:
    """Serve `version` (None: the latest) from now on; the running Triton picks it up on `reload`."""
    path = repository / model / "config.pbtxt"
    if not path.exists():
        raise RepositoryError(f"no model {model!r} in {repository}")
    if version is not None and version not in versions(repository, model):
        raise RepositoryError(f"{model} has no version {version}; it has {versions(repository, model)}")
    policy = ("version_policy: { latest: { num_versions: 1 } }" if version is None
              else f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}")
    text = path.read_text()
    text = POLICY.sub(policy, text, count=1) if POLICY.search(text) else text.rstrip("\n") + "\n" + policy + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def served_version(repository: Path, model: str) -> int | None:
    """The version the config's policy serves (None if the model has no versions)."""
    found = versions(repository, model)
    if not found:
        return None
    match = re.search(r"specific:\s*\{\s*versions:\s*\[\s*(\d+)", (repository / model / "config.pbtxt").read_text())
    return int(match.group(1)) if match else found[-1]


def publish(repository: Path, base: str, name: str, module, metadata: dict) -> tuple[str, int]:
    """Write a fine-tuned module (an OnnxModule) as the next version of `<base>__<name>`; it becomes the served one."""
    model = adapted_name(base, name)
    folder = repository / model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(_config_text(repository, base, model))
    version = (versions(repository, model) or [0])[-1] + 1
    staging = folder / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    module.export(staging / "model.onnx")
    shutil.copyfile((repository / base / "1" / "model.py").resolve(), staging / "model.py")
    (staging / "metadata.json").write_text(json.dumps({**metadata, "model": model, "version": version}, indent=1,
                                                      default=_jsonable))
    staging.rename(folder / str(version))  # a version appears whole or not at all
    return model, version


def metadata(repository: Path, model: str, version: int) -> dict:
    path = repository / model / str(version) / "metadata.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def reload(triton_url: str, model: str, timeout_s: float = 120.0) -> str | None:
    """Ask a running Triton to load `model` again (new version or policy, no restart). Returns None when done, or
    why it could not (no Triton there, or the load failed)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        client = grpcclient.InferenceServerClient(triton_url)
        if not client.is_server_live(client_timeout=5):
            return f"Triton at {triton_url} is not live"
        client.load_model(model, client_timeout=timeout_s)
        if not client.is_model_ready(model, client_timeout=5):
            return f"Triton at {triton_url} loaded {model} but it is not ready"
        return None
    except InferenceServerException as exc:
        return f"Triton at {triton_url}: {str(exc).splitlines()[0]}"
