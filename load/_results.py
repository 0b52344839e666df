"""Saving a benchmark's figures: one JSON file, also printed. Dependency-free, so GPU-host scripts can use it too."""

from __future__ import annotations

import json
from pathlib import Path


def save(out: Path, result: dict, shown: dict | None = None) -> None:
    """Write `result` to `out` (folders created) and print `shown` (default: the whole result)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result if shown is None else shown, indent=2, default=str))
