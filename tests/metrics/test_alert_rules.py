"""Vigil's alert rules, checked by promtool (Debian's prometheus package, installed by `make setup`): the rule file is
valid, every alert fires on the series built to trip it and stays silent on its healthy twin (rules_test.yml), a rule
whose threshold is broken fails those tests, and every metric a rule names is one Vigil exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil import metrics
from vigil.metrics import ALERT_RULES

HERE = Path(__file__).resolve().parent
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is installed by `make setup` (apt: prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def unit_tests(tmp_path: Path, rules: Path) -> subprocess.CompletedProcess:
    spec = yaml.safe_load((HERE / "rules_test.yml").read_text())
    spec["rule_files"] = [str(rules)]
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return promtool("test", "rules", str(path))


def test_the_rule_file_is_valid():
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_every_alert_fires_when_it_should_and_only_then(tmp_path):
    result = unit_tests(tmp_path, ALERT_RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (HERE / "rules_test.yml").read_text()))
    alerts = {r["alert"] for g in yaml.safe_load(ALERT_RULES.read_text())["groups"] for r in g["rules"]}
    assert alerts == tested, f"alerts without a promtool test: {alerts - tested}"


@pytest.mark.parametrize("old, new", [("> 30", "> 3000"), ("(vigil_camera_drifted) == 1", "(vigil_camera_drifted) == 2"),
                                      ("for: 2m", "for: 20m")])
def test_a_broken_threshold_fails_the_unit_tests(tmp_path, old, new):
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERT_RULES.read_text().replace(old, new, 1))
    result = unit_tests(tmp_path, broken)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_every_metric_a_rule_names_is_exported():
    exported = set()
    for value in vars(metrics).values():
        if hasattr(value, "_name") and hasattr(value, "_type"):
            exported.add(value._name + ("_total" if value._type == "counter" else ""))
    named = set(re.findall(r"\bvigil_[a-z_]+", "\n".join(
        r["expr"] for g in yaml.safe_load(ALERT_RULES.read_text())["groups"] for r in g["rules"])))
    assert named and named <= exported, f"rules name metrics nobody exports: {named - exported}"
