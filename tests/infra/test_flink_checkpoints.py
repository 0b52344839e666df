"""The jobs take object-storage checkpoint URIs (a FlinkDeployment passes s3://...), and local paths as before."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vigil.flink_env import checkpoint_uri, job_arguments, restore_path


def test_uris_pass_through_and_paths_become_file_uris(tmp_path):
    assert checkpoint_uri("s3://vigil-checkpoints/flink/vigil-anomaly/checkpoints") == \
        "s3://vigil-checkpoints/flink/vigil-anomaly/checkpoints"
    assert checkpoint_uri(tmp_path / "chk") == (tmp_path / "chk").resolve().as_uri()
    assert checkpoint_uri(str(tmp_path)) == tmp_path.resolve().as_uri()


def test_the_command_line_keeps_the_uri_intact():
    parser = argparse.ArgumentParser()
    job_arguments(parser, "vigil-anomaly", "cameras", cameras_required=False)
    args = parser.parse_args(["--checkpoint-dir", "s3://bucket/flink/x", "--restore", "none"])
    assert checkpoint_uri(args.checkpoint_dir) == "s3://bucket/flink/x"  # a Path would have made it s3:/bucket/...
    assert restore_path(args.checkpoint_dir, "none") is None


def test_restore_latest_needs_a_local_directory(tmp_path):
    with pytest.raises(ValueError, match="Flink operator restores"):
        restore_path("s3://bucket/flink/x", "latest")
    assert restore_path(Path(tmp_path), "latest") is None  # nothing retained yet
