"""checkov over the whole Terraform tree (terraform framework) and over every object the deployment renders for 1,000
cameras (kubernetes framework), from its own venv (.venv-checkov: its hcl2 parser clashes with python-hcl2). Every
finding must be one accepted in infra/terraform/checkov-accepted.yaml, with the reason; an accepted entry that no
longer matches a finding fails too, so the list stays true."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.infra.conftest import ROOT, TF_ROOT, all_manifests

pytestmark = pytest.mark.slow  # runs Terraform (and checkov): about a minute, not for `make test-fast`

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
ACCEPTED = yaml.safe_load((TF_ROOT / "checkov-accepted.yaml").read_text())


def checkov(target, framework: str) -> list[dict]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: `make setup` installs checkov into its own venv")
    env = {**os.environ, "LOG_LEVEL": "ERROR", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run([str(CHECKOV), "-d", str(target), "--framework", framework, "--skip-download", "--quiet",
                             "--compact", "-o", "json"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout) if result.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    findings = []
    for report in reports:
        summary = report.get("summary", {})
        assert summary.get("parsing_errors", 0) == 0, f"checkov could not parse {report['results'].get('parsing_errors')}"
        findings += [{"framework": framework, "check": f["check_id"], "resource": f["resource"],
                      "file": f["file_path"], "name": f["check_name"]} for f in report["results"]["failed_checks"]]
    return findings


def matches(resource: str, pattern: str) -> bool:
    """`*` is the only wildcard (checkov's ids hold brackets and dots)."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), resource) is not None


def accepted(finding: dict) -> dict | None:
    for entry in ACCEPTED:
        if entry["framework"] == finding["framework"] and entry["check"] == finding["check"] and any(
                matches(finding["resource"], pattern) for pattern in entry["resources"]):
            return entry
    return None


@pytest.fixture(scope="module")
def findings(deployment_1000, tmp_path_factory) -> list[dict]:
    rendered = tmp_path_factory.mktemp("checkov-rendered")
    for i, m in enumerate(all_manifests(deployment_1000)):
        (rendered / f"{i:04d}-{m['kind'].lower()}-{m['metadata']['name']}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    return checkov(TF_ROOT, "terraform") + checkov(rendered, "kubernetes")


def test_every_finding_is_accepted_with_a_reason(findings):
    new = [f"{f['framework']} {f['check']} ({f['name']}) on {f['resource']} in {f['file']}" for f in findings if not accepted(f)]
    assert not new, "checkov findings not in infra/terraform/checkov-accepted.yaml (fix them, or accept with a reason):\n" + "\n".join(new)


def test_every_accepted_finding_still_occurs(findings):
    stale = [f"{e['framework']} {e['check']}" for e in ACCEPTED if not any(accepted(f) is e for f in findings)]
    assert not stale, f"accepted findings that checkov no longer reports (remove them): {stale}"


def test_accepted_entries_have_reasons():
    for entry in ACCEPTED:
        assert set(entry) == {"check", "framework", "resources", "reason"} and len(entry["reason"]) > 40, entry


def test_checkov_does_fail_on_a_bad_object(tmp_path):
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "vigil"},
        "spec": {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}}))
    assert "CKV_K8S_16" in {f["check"] for f in checkov(tmp_path, "kubernetes")}  # privileged container
