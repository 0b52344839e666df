"""The frame store: encoded frames written by ingest and read by inference, addressed by URI.

Pixels never travel through Kafka; a `FrameRef` carries the URI. The local store keeps one folder per camera and hour
so retention clean-up removes whole folders. An S3-compatible store is the production counterpart behind the same
three methods (put, get, delete_older_than).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse


class FrameStore(Protocol):
    def put(self, camera_id: str, sequence: int, capture_ts_ms: int, data: bytes, extension: str) -> str: ...

    def get(self, uri: str) -> bytes: ...

    def delete_older_than(self, cutoff_ts_ms: int) -> int: ...


class FrameNotFound(FileNotFoundError):
    """The frame a reference points to is gone (retention, or a store that lost it)."""


class LocalFrameStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _hour_dir(self, camera_id: str, capture_ts_ms: int) -> Path:
        return self.root / camera_id / time.strftime("%Y%m%d%H", time.gmtime(capture_ts_ms / 1000))

    def put(self, camera_id: str, sequence: int, capture_ts_ms: int, data: bytes, extension: str = "jpg") -> str:
        folder = self._hour_dir(camera_id, capture_ts_ms)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{capture_ts_ms}-{sequence:08d}.{extension}"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a frame
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"local frame store cannot read {uri!r}")
        try:
            return Path(unquote(parsed.path)).read_bytes()
        except FileNotFoundError:
            raise FrameNotFound(f"frame {uri} is not in the store (removed by retention?)") from None

    def delete_older_than(self, cutoff_ts_ms: int) -> int:
        """Remove frames captured before `cutoff_ts_ms`; returns how many files were removed."""
        removed = 0
        cutoff_hour = time.strftime("%Y%m%d%H", time.gmtime(cutoff_ts_ms / 1000))
        for camera_dir in (p for p in self.root.iterdir() if p.is_dir()):
            for hour_dir in (p for p in camera_dir.iterdir() if p.is_dir()):
                if hour_dir.name < cutoff_hour:
                    removed += sum(1 for _ in hour_dir.iterdir())
                    shutil.rmtree(hour_dir, ignore_errors=True)
                elif hour_dir.name == cutoff_hour:
                    for frame in hour_dir.iterdir():
                        try:
                            if int(frame.name.split("-", 1)[0]) < cutoff_ts_ms:
                                frame.unlink(missing_ok=True)
                                removed += 1
                        except ValueError:
                            continue
        return removed


def open_frame_store(uri: str) -> FrameStore:
    """`file:///path` or a plain path → LocalFrameStore. Other schemes are refused with a clear error."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalFrameStore(Path(unquote(parsed.path)))
    raise ValueError(f"unsupported frame store {uri!r}: this build supports local directories (file://); "
                     "an S3-compatible store is not implemented yet")
