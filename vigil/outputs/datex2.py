"""The DATEX II output: TrafficBins published as DATEX II v3.7 files a traffic centre can fetch, per camera:

    <datex2_dir>/<camera_id>/sites.xml                     MeasurementSiteTablePublication, one site per lane
    <datex2_dir>/<camera_id>/measured-<bin end ms>.xml     MeasuredDataPublication of one interval, every lane
    <datex2_dir>/<camera_id>/latest.xml                    the newest interval's publication

Every file is replaced atomically (temp file + os.replace), so a reader never sees half a document. Bins of one
interval may arrive in separate flushes (the sink flushes every half second), so a flush merges its bins into the
interval's file instead of overwriting it; a replayed bin replaces its earlier self (same lane, same interval).
The site table grows with the lanes seen and gets a new version when it changes (lanes are never dropped from it,
so older publications keep resolving). The newest `datex2_keep` interval files per camera are kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from pydantic import Field

from vigil import datex2
from vigil.config import Settings
from vigil.outputs.base import Output
from vigil.topics import Topic

log = logging.getLogger("vigil.outputs.datex2")

RECORD_TYPE = "TrafficBin"


class Datex2Settings(Settings):
    datex2_dir: Path = Field(Path(""), description="Folder of the DATEX II files; empty = <data_dir>/datex2.")
    datex2_keep: int = Field(1440, ge=1, description="MeasuredDataPublication files kept per camera (1440 = a day "
                             "of 1-minute bins); older ones are deleted.")
    datex2_country: str = Field("XX", min_length=2, max_length=2, description="publicationCreator country (ISO "
                                "3166-1 alpha-2) of the publishing traffic centre.")
    datex2_national_identifier: str = Field("vigil", min_length=1, description="publicationCreator national "
                                            "identifier of the publishing traffic centre.")

    @property
    def datex2_root(self) -> Path:
        return self.datex2_dir if str(self.datex2_dir) not in ("", ".") else self.data_dir / "datex2"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and os.replace: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes it private; the publication is for the web server that serves it
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def measured_files(folder: Path) -> list[tuple[int, Path]]:
    """(bin end ms, path) of a camera's MeasuredDataPublication files, oldest first."""
    found = []
    for path in folder.glob("measured-*.xml"):
        try:
            found.append((int(path.stem.removeprefix("measured-")), path))
        except ValueError:
            continue
    return sorted(found)


class Datex2Output(Output):
    name = "datex2"

    def __init__(self, settings: Settings):
        if not isinstance(settings, Datex2Settings):
            settings = Datex2Settings(**settings.model_dump())  # the sink's settings, plus VIGIL_DATEX2_* from env
        self.settings = settings
        self.root = settings.datex2_root
        self.creator = (settings.datex2_country, settings.datex2_national_identifier)
        self.buffer: dict[str, dict[str, dict]] = defaultdict(dict)  # camera → bin_id → bin (replays collapse)
        self.site_tables: dict[str, tuple[int, dict[str, int]]] = {}  # camera → (version, lane → number)
        self.published = 0
        self.failures = 0

    def accepts(self, topic: Topic, record_type: str) -> bool:
        return record_type == RECORD_TYPE

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        if record_type != RECORD_TYPE:
            raise ValueError(f"the DATEX II output takes {RECORD_TYPE} records, not {record_type}")
        datex2.validate_bin(record)
        self.buffer[record["camera_id"]][record["bin_id"]] = record

    def pending(self) -> int:
        return sum(len(bins) for bins in self.buffer.values())

    def flush(self, stop: threading.Event | None = None) -> bool:
        for camera_id in list(self.buffer):
            try:
                self._publish(camera_id, list(self.buffer[camera_id].values()))
            except OSError as exc:  # disk full, permissions: keep the bins, the offsets stay uncommitted
                self.failures += 1
                log.error("cannot write the DATEX II files of camera %s under %s: %s", camera_id, self.root, exc)
                return False
            del self.buffer[camera_id]
        return True

    def _publish(self, camera_id: str, bins: list[dict]) -> None:
        folder = self.root / camera_id
        version = self._site_table(camera_id, folder, bins)
        now_ms = int(time.time() * 1000)
        by_end: dict[int, list[dict]] = defaultdict(list)
        for traffic_bin in bins:
            by_end[traffic_bin["bin_end_ms"]].append(traffic_bin)
        written: dict[int, bytes] = {}
        for end_ms, group in sorted(by_end.items()):
            path = folder / f"measured-{end_ms}.xml"
            document = datex2.measured_data_publication(group, now_ms, version, creator=self.creator)
            if path.exists():
                try:
                    document = datex2.merge_measured_data(path.read_bytes(), document)
                except (ValueError, SyntaxError) as exc:  # lxml's parse errors are SyntaxErrors
                    log.warning("replacing unreadable %s: %s", path, exc)
            write_atomically(path, document)
            written[end_ms] = document
            self.published += 1
        files = measured_files(folder)
        newest_ms = files[-1][0]
        if newest_ms in written:
            write_atomically(folder / "latest.xml", written[newest_ms])
        for _, path in files[:-self.settings.datex2_keep]:
            path.unlink(missing_ok=True)

    def _site_table(self, camera_id: str, folder: Path, bins: list[dict]) -> int:
        """The camera's site table version after adding the lanes of `bins`; sites.xml is rewritten when it changed."""
        path = folder / "sites.xml"
        if camera_id not in self.site_tables:
            self.site_tables[camera_id] = (0, {})
            if path.exists():
                try:
                    self.site_tables[camera_id] = datex2.site_table_lanes(path.read_bytes())
                except (ValueError, SyntaxError) as exc:
                    log.warning("rewriting unreadable %s: %s", path, exc)
        version, lanes = self.site_tables[camera_id]
        seen = {**lanes, **{b["lane"]: int(b["lane_number"]) for b in bins}}
        if seen != lanes or not path.exists():
            version = version + 1 if seen != lanes else max(version, 1)
            bin_seconds = (bins[0]["bin_end_ms"] - bins[0]["bin_start_ms"]) / 1000
            lanes_seen = [{"name": name, "number": number} for name, number in seen.items()]
            document = datex2.measurement_site_table(camera_id, lanes_seen, version, bin_seconds=bin_seconds,
                                                     creator=self.creator)
            write_atomically(path, document)
            self.site_tables[camera_id] = (version, seen)
        return version

    def stats(self) -> dict:
        return {"published": self.published, "write_failures": self.failures, "directory": str(self.root)}
