"""The Avro codec under coverage-guided fuzzing (atheris, tests/fuzz/atheris_avro.py), bounded and seeded so it is
deterministic and takes seconds: no input makes decode() or record_type() raise anything but UndecodableMessage."""

from __future__ import annotations

import subprocess
import sys

from vigil.config import REPO_ROOT

RUNS = 50_000


def test_libfuzzer_finds_no_input_the_codec_does_not_refuse_cleanly():
    # libFuzzer's RSS limit reads the peak RSS, which Linux carries across fork and exec: started from a pytest
    # process that already holds gigabytes (Flink, torch), the fuzzer "ran out of memory" on its first inputs. So the
    # RSS check is off, and any single allocation over 512 MB (what a hostile length field would cause) still fails.
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.atheris_avro", f"-runs={RUNS}", "-seed=1",
                           "-rss_limit_mb=0", "-malloc_limit_mb=512"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {RUNS} runs" in done.stderr
