"""Arrows only go down. The layering, in one sentence (README, "Layout"):

    vigil (the shared core) ← services/*, jobs/*, models/* (each imports the core and its own package only)
    ← app (the `vigil` command, demo, embedded stack, scenarios) ← load, tests.

This test parses every import (ast, including those inside functions) and fails on an arrow against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"vigil", "services", "jobs", "models", "app", "load", "tests"}
# Arrows between sibling packages of the middle layer that are part of the design (importer, imported).
ALLOWED_SIBLINGS: set[tuple[str, str]] = set()


def unit(module: str) -> str:
    """The unit an import belongs to: 'vigil', 'services.infer', 'jobs.anomaly', 'models', 'app', ..."""
    parts = module.split(".")
    if parts[0] in ("services", "jobs") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def layer(unit_name: str) -> int:
    root = unit_name.split(".")[0]
    return {"vigil": 0, "services": 1, "jobs": 1, "models": 1, "app": 2, "load": 3, "tests": 3}[root]


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` (a module name) may not import `imported`, or None when the arrow goes down."""
    source, target = unit(importer), unit(imported)
    if target.split(".")[0] not in FIRST_PARTY or source == target:
        return None
    if layer(target) < layer(source) or (layer(source) == 3 and layer(target) <= 3 and target != "tests"):
        return None
    if (source, target) in ALLOWED_SIBLINGS:
        return None
    if target in ("services", "jobs"):  # the bare package __init__
        return None
    kind = "up" if layer(target) > layer(source) else "sideways"
    return f"{importer} imports {imported}: an arrow {kind} from {source} to {target}"


def imports_of(source: str, module: str, is_package: bool = False) -> list[str]:
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append(name)
            # `from vigil import cameras` names a submodule: check the submodule too
            found += [f"{name}.{alias.name}" for alias in node.names if alias.name != "*"]
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    if relative.parts[0] == "models":
        return "models." + relative.parts[1]
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def tree_violations() -> list[str]:
    problems = []
    for path in sorted(ROOT.glob("**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in FIRST_PARTY or relative.parts[0] in ("tests", "load"):
            continue
        module = module_name(path)
        for imported in imports_of(path.read_text(), module, path.name == "__init__.py"):
            problem = violation(module, imported)
            if problem:
                problems.append(f"{relative}: {problem}")
    return problems


def test_every_import_in_the_tree_goes_down():
    problems = tree_violations()
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


@pytest.mark.parametrize("importer, source, expected", [
    ("vigil.config", "from services.infer.service import InferService", "arrow up from vigil to services.infer"),
    ("vigil.cameras", "def f():\n    from jobs.reid.matching import Topology", "arrow up from vigil to jobs.reid"),
    ("services.anomaly.train", "from jobs.anomaly import job", "arrow sideways from services.anomaly to jobs.anomaly"),
    ("services.reid.stage", "import services.infer.service", "arrow sideways from services.reid to services.infer"),
    ("services.infer.service", "from services.reid.stage import ReidStage", "sideways from services.infer to services.reid"),
    ("models.reid_color", "from services.reid.summaries import TrackSummaries", "sideways from models to services.reid"),
    ("jobs.anomaly.job", "from app.cli import main", "arrow up from jobs.anomaly to app"),
    ("vigil.runtime", "from app import demo", "arrow up from vigil to app"),
])
def test_a_wrong_arrow_is_caught(importer, source, expected):
    problems = [p for p in (violation(importer, name) for name in imports_of(source, importer)) if p]
    assert problems and expected in problems[0]


@pytest.mark.parametrize("importer, source", [
    ("services.reid.service", "from services.reid.stage import ReidStage"),
    ("jobs.anomaly.job", "from vigil.features import scene_features"),
    ("app.demo", "from services.sink.service import Sink"),
    ("services.reid.stage", "from .summaries import TrackSummaries"),
])
def test_downward_arrows_pass(importer, source):
    assert not [p for p in (violation(importer, name) for name in imports_of(source, importer)) if p]
