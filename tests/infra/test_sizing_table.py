"""The README's sizing table is the sizing module's output on capacities.json (`generate.py --sizing-table`)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.infra.conftest import ROOT, TF_ROOT

pytestmark = pytest.mark.slow  # runs Terraform (and checkov): about a minute, not for `make test-fast`


def test_readme_sizing_table_is_current(terraform):
    spec = importlib.util.spec_from_file_location("infra_generate", TF_ROOT / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    table = generate.sizing_table()
    assert table in (ROOT / "README.md").read_text(), (
        "README's sizing table is stale: paste `.venv/bin/python infra/terraform/generate.py --sizing-table`")
    assert table in (TF_ROOT / "README.md").read_text(), "infra/terraform/README.md's sizing table is stale"
