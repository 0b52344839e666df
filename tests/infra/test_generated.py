"""The modules' inputs that come from the code are generated, never copied by hand: the topic registry
(topics.auto.json) and the VIGIL_* settings each component reads (settings.auto.json). Stale files fail here."""

from __future__ import annotations

import importlib.util
import inspect

import pytest

from tests.infra.conftest import TF_ROOT


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("infra_generate", TF_ROOT / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_current(generate):
    stale = [str(path.relative_to(TF_ROOT)) for path, text in generate.files().items()
             if not path.exists() or path.read_text() != text]
    assert not stale, f"stale: {stale}; run .venv/bin/python infra/terraform/generate.py"


def test_topics_match_the_registry(generate):
    from vigil.topics import TOPICS

    topics = generate.topics()["topics"]
    assert list(topics) == list(TOPICS)
    assert all(topics[n]["partitions"] == t.partitions and topics[n]["retention_ms"] == t.retention_ms
               for n, t in TOPICS.items())


def test_every_settings_class_is_deployed_or_excused(generate):
    """A new service's Settings class must be mapped to a component (or listed with the reason it is not)."""
    import importlib

    from vigil.config import Settings

    for package in ("services", "jobs", "vigil", "app"):
        for module in ("services.ingest.settings", "services.infer.service", "services.reid.service",
                       "services.reid.stage", "services.reid.api", "services.reid.train", "services.sink.service",
                       "services.evidence.service", "services.drift.service", "services.console.settings", "jobs.reid.__main__",
                       "jobs.traffic.__main__", "vigil.model_registry", "vigil.outputs.webhook",
                       "vigil.outputs.mqtt", "vigil.outputs.datex2", "app.review"):
            if module.startswith(package):
                importlib.import_module(module)
    mapped = {spec.rpartition(":")[2] for spec in [*generate.COMPONENTS.values(), *generate.SINK_OUTPUTS.values()]}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {c.__name__ for c in subclasses(Settings) if inspect.getmodule(c).__name__.split(".")[0] in
            ("services", "jobs", "vigil", "app")}
    missing = ours - mapped - set(generate.NOT_DEPLOYED)
    assert not missing, f"Settings classes neither deployed nor excused in infra/terraform/generate.py: {missing}"


def test_cluster_rules(generate):
    infer = generate.settings()["components"]["infer"]
    assert infer["VIGIL_KAFKA_BOOTSTRAP"]["required_in_cluster"]  # 127.0.0.1
    assert infer["VIGIL_KAFKA_EMBEDDED"]["required_in_cluster"]
    assert infer["VIGIL_FRAME_STORE"]["required_in_cluster"]  # a local directory
    assert not infer["VIGIL_MAX_BATCH"]["required_in_cluster"] and infer["VIGIL_MAX_BATCH"]["default"] == "8"
    assert "<repo>" in infer["VIGIL_DATA_DIR"]["default"]  # no absolute path of this checkout in the file
