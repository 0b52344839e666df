"""The frame store: encoded frames written by ingest and read by inference, addressed by URI.

Pixels never travel through Kafka; a `FrameRef` carries the URI. The local store keeps one folder per camera and hour
so retention clean-up removes whole folders; the S3-compatible store (production) keeps the same key layout behind
the same three methods (put, get, delete_older_than).
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


class S3FrameStore:
    """Frames as objects in an S3-compatible store (AWS S3, MinIO, SeaweedFS, ...), keyed like the local layout.
    Credentials and region come from the usual AWS environment/config; the endpoint from the URI or AWS_ENDPOINT_URL."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url,
                               config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32))

    def _key(self, camera_id: str, sequence: int, capture_ts_ms: int, extension: str) -> str:
        hour = time.strftime("%Y%m%d%H", time.gmtime(capture_ts_ms / 1000))
        return f"{self.prefix}{camera_id}/{hour}/{capture_ts_ms}-{sequence:08d}.{extension}"

    def put(self, camera_id: str, sequence: int, capture_ts_ms: int, data: bytes, extension: str = "jpg") -> str:
        key = self._key(camera_id, sequence, capture_ts_ms, extension)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def get(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise ValueError(f"S3 frame store for bucket {self.bucket!r} cannot read {uri!r}")
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=parsed.path.lstrip("/"))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            raise FrameNotFound(f"frame {uri} is not in the store (removed by retention?)") from None

    def delete_older_than(self, cutoff_ts_ms: int) -> int:
        doomed = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                try:
                    if int(item["Key"].rsplit("/", 1)[-1].split("-", 1)[0]) < cutoff_ts_ms:
                        doomed.append({"Key": item["Key"]})
                except ValueError:
                    continue
        for start in range(0, len(doomed), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
        return len(doomed)


def open_frame_store(uri: str) -> FrameStore:
    """`file:///path` or a plain path → LocalFrameStore; `s3://bucket/prefix[?endpoint=http://host:port]` →
    S3FrameStore. Anything else is refused with a clear error."""
    from urllib.parse import parse_qs

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalFrameStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"frame store {uri!r} names no bucket (s3://bucket/prefix)")
        endpoint = parse_qs(parsed.query).get("endpoint", [None])[0]
        return S3FrameStore(parsed.netloc, unquote(parsed.path), endpoint)
    raise ValueError(f"unsupported frame store {uri!r}: use a directory (file:///path) or s3://bucket/prefix")
