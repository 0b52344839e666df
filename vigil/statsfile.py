"""Service counters in a small JSON file, replaced atomically so readers (the demo, benchmarks) never see half of it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_stats(path: Path, data: dict) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
