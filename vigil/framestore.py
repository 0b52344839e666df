"""The frame store: encoded frames written by ingest and read by inference, addressed by URI.

Pixels never travel through Kafka; a `FrameRef` carries the URI. The local store keeps one folder per camera and hour
so retention clean-up removes whole folders; the S3-compatible store (production) keeps the same key layout behind
the same methods (put, get, delete_older_than, and the evidence methods below).

Besides frames, a store holds two kinds of objects under reserved top-level names that no camera id can take (ids
start with a letter or digit), and that retention never treats as frames:

- `_evidence/<camera_id>/<name>.jpg|.mp4`: incident evidence (`put_object`, `exists`; `vigil/evidence.py`).
- `_pins/<name>.json`: retention pins. A `Pin` (camera, from_ms, to_ms, expiry) keeps that camera's frames captured
  in [from_ms, to_ms] through `delete_older_than` until it is released (`unpin`) or expires, so an open incident's
  frames outlive the retention time. Pins live in the store itself, so every process that runs retention (ingest)
  honours the pins another process (the evidence service) set, with no other shared state.

Erasure (`vigil erase`, vigil/erasure.py) removes a camera's objects of a period with `delete_frames` (frames and the
re-ID crops kept beside them), `evidence_keys` + `delete_object` (its snapshots and clips) and `unpin`.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import mimetypes
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

log = logging.getLogger("vigil.framestore")

EVIDENCE_PREFIX = "_evidence"
PINS_PREFIX = "_pins"
RESERVED = (EVIDENCE_PREFIX, PINS_PREFIX)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class FrameStore(Protocol):
    def put(self, camera_id: str, sequence: int, capture_ts_ms: int, data: bytes, extension: str) -> str: ...

    def get(self, uri: str) -> bytes: ...

    def delete_older_than(self, cutoff_ts_ms: int, camera_id: str | None = None) -> int: ...


class EvidenceStore(FrameStore, Protocol):
    """A frame store that also keeps evidence objects and retention pins (both stores below)."""

    def put_object(self, uri_or_key: str, data: bytes) -> str: ...

    def exists(self, uri: str) -> bool: ...

    def frames_between(self, camera_id: str, from_ms: int, to_ms: int) -> list[tuple[int, str]]: ...

    def pin(self, pin: Pin) -> None: ...

    def unpin(self, pin_id: str) -> None: ...

    def pins(self) -> list[Pin]: ...


def safe_segment(text: str) -> str:
    """`text` with every character but [A-Za-z0-9._-] replaced by '_' (valid camera ids are unchanged)."""
    return _UNSAFE.sub("_", text)


def safe_name(text: str) -> str:
    """A file/key name for any id ('cam-1:stopped_vehicle:1700000000000' → 'cam-1_stopped_vehicle_1700000000000-
    <8 hex>'): only [A-Za-z0-9._-], and the hash of the original keeps ids that differ only in replaced characters
    apart."""
    return f"{safe_segment(text)[:150]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def object_uri(store_uri: str, key: str) -> str:
    """The URI that the store opened from `store_uri` gives the object at `key` ('/'-separated, relative to the store
    root), without opening the store: the same `file://` URI `LocalFrameStore.uri_for` returns (root resolved), or
    `s3://bucket/<prefix>/key` (the `?endpoint=` is not part of object URIs, as in `put`)."""
    _check_key(key)
    parsed = urlparse(store_uri)
    if parsed.scheme in ("", "file"):
        return (Path(unquote(parsed.path)).resolve() / key).as_uri()
    if parsed.scheme == "s3":
        return f"s3://{parsed.netloc}/{_s3_prefix(unquote(parsed.path))}{key}"
    raise ValueError(f"unsupported frame store {store_uri!r}: use a directory (file:///path) or s3://bucket/prefix")


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{key!r} is not a relative object key of the frame store")


def _s3_prefix(prefix: str) -> str:
    return prefix.strip("/") + "/" if prefix.strip("/") else ""


def _hour(ts_ms: int) -> str:
    return time.strftime("%Y%m%d%H", time.gmtime(ts_ms / 1000))


def _hours(from_ms: int, to_ms: int) -> list[str]:
    """The hour folders that frames captured in [from_ms, to_ms] are in."""
    start = from_ms - from_ms % 3_600_000
    return [_hour(hour_ms) for hour_ms in range(start, to_ms + 1, 3_600_000)]


def _hour_span_ms(hour: str) -> tuple[int, int] | None:
    try:
        start = calendar.timegm(time.strptime(hour, "%Y%m%d%H")) * 1000
    except ValueError:
        return None
    return start, start + 3_600_000 - 1


def _frame_ts(name: str) -> int | None:
    """Capture time from a frame's file name '<capture_ts_ms>-<sequence>.<ext>'."""
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Pin:
    """Keep `camera_id`'s frames captured in [from_ms, to_ms] until released or `expires_ms` (wall clock) passed.
    `note` is the owner's own data (the evidence service keeps there what it needs to finish after a restart)."""

    pin_id: str
    camera_id: str
    from_ms: int
    to_ms: int
    expires_ms: int
    note: dict = field(default_factory=dict)

    def keeps(self, camera_id: str, ts_ms: int) -> bool:
        return camera_id == self.camera_id and self.from_ms <= ts_ms <= self.to_ms

    def overlaps(self, camera_id: str, from_ms: int, to_ms: int) -> bool:
        return camera_id == self.camera_id and self.from_ms <= to_ms and from_ms <= self.to_ms

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Pin:
        fields = json.loads(data)
        return cls(str(fields["pin_id"]), str(fields["camera_id"]), int(fields["from_ms"]), int(fields["to_ms"]),
                   int(fields["expires_ms"]), dict(fields.get("note") or {}))


def _pin_key(pin_id: str) -> str:
    return f"{PINS_PREFIX}/{safe_name(pin_id)}.json"


class _Pins:
    """Pin handling both stores share: pins are small JSON objects at `_pins/<name>.json`."""

    def pin(self, pin: Pin) -> None:
        """Set (or replace: same `pin_id`) a retention pin."""
        self.put_object(_pin_key(pin.pin_id), pin.to_json())

    def live_pins(self, now_ms: int | None = None) -> list[Pin]:
        """The pins in force; expired ones are removed (a pin whose owner never released it must not keep frames
        forever) and unreadable ones are logged and ignored."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        live = []
        for pin in self.pins():
            if pin.expires_ms < now_ms:
                log.warning("retention pin %s (%s %d..%d) expired unreleased; removing it", pin.pin_id, pin.camera_id,
                            pin.from_ms, pin.to_ms)
                self.unpin(pin.pin_id)
            else:
                live.append(pin)
        return live

    @staticmethod
    def _read_pin(name: str, data: bytes) -> Pin | None:
        try:
            return Pin.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable retention pin %s: %s", name, exc)
            return None


class FrameNotFound(FileNotFoundError):
    """The frame a reference points to is gone (retention, or a store that lost it)."""


class LocalFrameStore(_Pins):
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

    def delete_older_than(self, cutoff_ts_ms: int, camera_id: str | None = None) -> int:
        """Remove frames captured before `cutoff_ts_ms` (of one camera, or of all), except those a live pin keeps;
        returns how many files were removed. Evidence and pins are not frames and are never removed here."""
        removed = 0
        cutoff_hour = _hour(cutoff_ts_ms)
        pins = self.live_pins()
        only = camera_id  # (the loop below names each camera: the filter must not see that name)
        for camera_dir in (p for p in self.root.iterdir() if p.is_dir() and p.name not in RESERVED
                           and only in (None, p.name)):
            camera_id = camera_dir.name
            for hour_dir in (p for p in camera_dir.iterdir() if p.is_dir()):
                if hour_dir.name > cutoff_hour:
                    continue
                span = _hour_span_ms(hour_dir.name)
                pinned = [pin for pin in pins if span is None or pin.overlaps(camera_id, *span)]
                if hour_dir.name < cutoff_hour and not pinned:
                    removed += sum(1 for _ in hour_dir.iterdir())
                    shutil.rmtree(hour_dir, ignore_errors=True)
                    continue
                for frame in hour_dir.iterdir():
                    ts_ms = _frame_ts(frame.name)
                    if ts_ms is not None and ts_ms < cutoff_ts_ms and not any(p.keeps(camera_id, ts_ms) for p in pinned):
                        frame.unlink(missing_ok=True)
                        removed += 1
        return removed

    # evidence objects and pins
    def uri_for(self, key: str) -> str:
        _check_key(key)
        return (self.root / key).as_uri()

    def _path(self, uri_or_key: str) -> Path:
        """The path of an object of this store, given as a key or as a `file://` URI inside the store's root."""
        if "://" not in uri_or_key:
            _check_key(uri_or_key)
            return self.root / uri_or_key
        parsed = urlparse(uri_or_key)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise ValueError(f"{uri_or_key!r} is not in the local frame store at {self.root}")
        return path

    def put_object(self, uri_or_key: str, data: bytes) -> str:
        """Write an object (evidence, a pin) atomically at a key or a URI of this store; returns its URI."""
        path = self._path(uri_or_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path.as_uri()

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def frames_between(self, camera_id: str, from_ms: int, to_ms: int) -> list[tuple[int, str]]:
        """(capture_ts_ms, uri) of the camera's stored frames captured in [from_ms, to_ms], oldest first."""
        found = []
        for hour in _hours(from_ms, to_ms):
            folder = self.root / camera_id / hour
            if folder.is_dir():
                for frame in folder.iterdir():
                    ts_ms = _frame_ts(frame.name)
                    if ts_ms is not None and from_ms <= ts_ms <= to_ms and not frame.name.endswith(".part"):
                        found.append((ts_ms, frame.as_uri()))
        return sorted(found)

    def delete_frames(self, camera_id: str, from_ms: int | None = None, to_ms: int | None = None,
                      dry_run: bool = False) -> list[str]:
        """Remove the camera's frame-store files captured in [from_ms, to_ms] (None: unbounded), pinned or not:
        frames and the re-ID crops stored beside them. Returns their names (with dry_run: lists, removes nothing)."""
        camera_dir = self.root / camera_id
        if not camera_dir.is_dir() or camera_id in RESERVED:
            return []
        removed = []
        for hour_dir in sorted(p for p in camera_dir.iterdir() if p.is_dir()):
            span = _hour_span_ms(hour_dir.name)
            if span and ((to_ms is not None and span[0] > to_ms) or (from_ms is not None and span[1] < from_ms)):
                continue
            for item in sorted(hour_dir.iterdir()):
                ts_ms = _frame_ts(item.name)
                if ts_ms is None or (from_ms is not None and ts_ms < from_ms) or (to_ms is not None and ts_ms > to_ms):
                    continue
                if not dry_run:
                    item.unlink(missing_ok=True)
                removed.append(item.name)
            if not dry_run and not any(hour_dir.iterdir()):
                hour_dir.rmdir()
        if not dry_run and not any(camera_dir.iterdir()):
            camera_dir.rmdir()
        return removed

    def evidence_keys(self, camera_id: str) -> list[str]:
        """URIs of every evidence object (snapshots, clips) of the camera."""
        folder = self.root / EVIDENCE_PREFIX / safe_segment(camera_id)
        return sorted(p.as_uri() for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def delete_object(self, uri_or_key: str) -> bool:
        """Remove one object of the store (evidence, a pin); whether it was there."""
        path = self._path(uri_or_key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def unpin(self, pin_id: str) -> None:
        (self.root / _pin_key(pin_id)).unlink(missing_ok=True)

    def pins(self) -> list[Pin]:
        folder = self.root / PINS_PREFIX
        if not folder.is_dir():
            return []
        read = (self._read_pin(path.name, path.read_bytes()) for path in sorted(folder.glob("*.json")))
        return [pin for pin in read if pin is not None]


class S3FrameStore(_Pins):
    """Frames as objects in an S3-compatible store (AWS S3, MinIO, SeaweedFS, ...), keyed like the local layout.
    Credentials and region come from the usual AWS environment/config; the endpoint from the URI or AWS_ENDPOINT_URL."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, _s3_prefix(prefix)
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

    def delete_older_than(self, cutoff_ts_ms: int, camera_id: str | None = None) -> int:
        """Remove frames captured before `cutoff_ts_ms` (of one camera, or of all), except those a live pin keeps
        (evidence and pins stay)."""
        pins = self.live_pins()
        doomed = []
        prefix = self.prefix + (f"{camera_id}/" if camera_id else "")
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                camera_id, _, rest = item["Key"][len(self.prefix):].partition("/")
                ts_ms = _frame_ts(rest.rsplit("/", 1)[-1])
                if camera_id in RESERVED or ts_ms is None or ts_ms >= cutoff_ts_ms:
                    continue
                if not any(pin.keeps(camera_id, ts_ms) for pin in pins):
                    doomed.append({"Key": item["Key"]})
        for start in range(0, len(doomed), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
        return len(doomed)

    # evidence objects and pins
    def uri_for(self, key: str) -> str:
        _check_key(key)
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _object_key(self, uri_or_key: str) -> str:
        if "://" not in uri_or_key:
            _check_key(uri_or_key)
            return self.prefix + uri_or_key
        parsed = urlparse(uri_or_key)
        key = parsed.path.lstrip("/")
        if parsed.scheme != "s3" or parsed.netloc != self.bucket or not key.startswith(self.prefix):
            raise ValueError(f"{uri_or_key!r} is not in the S3 frame store s3://{self.bucket}/{self.prefix}")
        return key

    def put_object(self, uri_or_key: str, data: bytes) -> str:
        """Write an object (evidence, a pin) at a key or a URI of this store; returns its URI."""
        key = self._object_key(uri_or_key)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._object_key(uri))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _list(self, prefix: str):
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def frames_between(self, camera_id: str, from_ms: int, to_ms: int) -> list[tuple[int, str]]:
        """(capture_ts_ms, uri) of the camera's stored frames captured in [from_ms, to_ms], oldest first."""
        found = []
        for hour in _hours(from_ms, to_ms):
            for item in self._list(f"{self.prefix}{camera_id}/{hour}/"):
                ts_ms = _frame_ts(item["Key"].rsplit("/", 1)[-1])
                if ts_ms is not None and from_ms <= ts_ms <= to_ms:
                    found.append((ts_ms, f"s3://{self.bucket}/{item['Key']}"))
        return sorted(found)

    def delete_frames(self, camera_id: str, from_ms: int | None = None, to_ms: int | None = None,
                      dry_run: bool = False) -> list[str]:
        """Remove the camera's frame-store objects captured in [from_ms, to_ms] (None: unbounded), pinned or not:
        frames and the re-ID crops stored beside them. Returns their names (with dry_run: lists, removes nothing)."""
        if camera_id in RESERVED:
            return []
        doomed = []
        for item in self._list(f"{self.prefix}{camera_id}/"):
            name = item["Key"].rsplit("/", 1)[-1]
            ts_ms = _frame_ts(name)
            if ts_ms is None or (from_ms is not None and ts_ms < from_ms) or (to_ms is not None and ts_ms > to_ms):
                continue
            doomed.append(item["Key"])
        for start in range(0, 0 if dry_run else len(doomed), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in doomed[start:start + 1000]], "Quiet": True})
        return [key.rsplit("/", 1)[-1] for key in doomed]

    def evidence_keys(self, camera_id: str) -> list[str]:
        """URIs of every evidence object (snapshots, clips) of the camera."""
        prefix = f"{self.prefix}{EVIDENCE_PREFIX}/{safe_segment(camera_id)}/"
        return sorted(f"s3://{self.bucket}/{item['Key']}" for item in self._list(prefix))

    def delete_object(self, uri_or_key: str) -> bool:
        """Remove one object of the store (evidence, a pin); whether it was there."""
        existed = self.exists(uri_or_key)
        self.s3.delete_object(Bucket=self.bucket, Key=self._object_key(uri_or_key))
        return existed

    def unpin(self, pin_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + _pin_key(pin_id))

    def pins(self) -> list[Pin]:
        read = []
        for item in self._list(f"{self.prefix}{PINS_PREFIX}/"):
            try:
                data = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
            except self.s3.exceptions.NoSuchKey:  # released while listing
                continue
            read.append(self._read_pin(item["Key"], data))
        return [pin for pin in read if pin is not None]


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
