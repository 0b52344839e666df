"""capacities.json holds what the load scripts measured, each figure with its source: a measured figure must equal
its result file's value (and that run must have met its conditions), a figure from a document must still be there,
and anything not measured must say so."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import ROOT, TF_ROOT

CAPACITIES = json.loads((TF_ROOT / "capacities.json").read_text())["capacities"]


def at(data, path: str):
    for part in path.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize("name", sorted(CAPACITIES))
def test_capacity_has_its_source(name):
    c = CAPACITIES[name]
    assert c["kind"] in ("measured", "derived", "assumption") and c["value"] > 0 and c["unit"] and c["note"]
    if c["kind"] == "assumption":
        assert c["note"].startswith("NOT MEASURED"), f"{name}: an assumption says so, and why"
        return
    source = c["source"]
    path = (ROOT / source["file"]).resolve()
    assert path.exists(), f"{name}: {source['file']} is gone"
    if "json_path" in source:
        data = json.loads(path.read_text())
        assert at(data, source["json_path"]) == c["value"], f"{name}: {source['file']} {source['json_path']} is now {at(data, source['json_path'])}"
        for condition, expected in source.get("requires", {}).items():
            assert at(data, condition) == expected, f"{name}: the run in {source['file']} no longer has {condition} = {expected}"
    else:
        lines = path.read_text().splitlines()
        assert any(source["text"] in line for line in lines), f"{name}: {source['file']} no longer says {source['text']!r}"
    if c["kind"] == "measured":
        assert c["machine"], f"{name}: on which machine"


def test_the_sizing_module_reads_every_capacity():
    text = (TF_ROOT / "modules" / "sizing" / "main.tf").read_text()
    unused = [name for name in CAPACITIES if f"local.cap.{name}" not in text]
    assert not unused, f"capacities.json lists figures the sizing model ignores: {unused}"
