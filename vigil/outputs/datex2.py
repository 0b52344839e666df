"""The DATEX II output: TrafficBins published as DATEX II v3.7 files a traffic centre can fetch, per camera:

    <datex2_dir>/<camera_id>/sites.xml                     MeasurementSiteTablePublication, one site per lane
    <datex2_dir>/<camera_id>/measured-<bin end ms>.xml     MeasuredDataPublication of one interval, every lane
    <datex2_dir>/<camera_id>/latest.xml                    the newest interval's publication

Every file is replaced atomically (temp file + os.replace), so a reader never sees half a document. Bins of one
interval may arrive in separate flushes (the sink flushes every half second), so a flush merges its bins into the
interval's file instead of overwriting it; a replayed bin replaces its earlier self (same lane, same interval).
The site table grows with the lanes seen and gets a new version when it changes (lanes are never dropped from it,
so older publications keep resolving). The newest `datex2_keep` interval files per camera are kept.

Incidents (Incident and IncidentVerdict from incidents.v1) become one SituationPublication of every current incident
(vigil/datex2_situation.py has the mapping and the lifecycle):

    <datex2_dir>/_situations.xml                           SituationPublication, one situation per incident
    <datex2_dir>/<camera_id>/incidents.json                the camera's incidents: latest revision, decisions

The state files are what a restarted sink continues from (written atomically before the offsets are committed, so a
replay after a crash changes nothing); the feed is rewritten whenever an incident changes, when a cleared incident's
linger time is over, and at the first flush after a start. `_situations.xml` starts with "_", which no camera id
can, so it never collides with a camera's folder.

HTTP: `serve()` (run by the sink when VIGIL_DATEX2_HTTP_PORT is set, or alone with `python -m vigil.outputs.datex2`)
serves these files read-only, with ETag / If-None-Match and Last-Modified / If-Modified-Since (304 when unchanged):

    /datex2/situations.xml                                 the SituationPublication
    /datex2/<camera_id>/latest.xml, sites.xml, measured-<bin end ms>.xml

Every request needs an API token of role viewer or higher (`Authorization: Bearer <token>`, vigil/auth.py): 401
without one, 403 for a token scoped to cameras asking for the situations of all; a scoped token gets its cameras'
files, and any other camera's answer 404. `VIGIL_DATEX2_PUBLIC=true` serves an open-data feed without tokens. HTTPS
with VIGIL_TLS_CERT_FILE and VIGIL_TLS_KEY_FILE.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import logging
import os
import re
import ssl
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from vigil import datex2, datex2_situation, redact, tls
from vigil.auth import AuthError, TokenStore, authorize
from vigil.config import Settings
from vigil.outputs.base import Output
from vigil.runtime import StartupError
from vigil.topics import Topic

log = logging.getLogger("vigil.outputs.datex2")

RECORD_TYPE = "TrafficBin"
INCIDENT_TYPES = (datex2_situation.INCIDENT, datex2_situation.VERDICT)
SITUATIONS_FILE = "_situations.xml"
STATE_FILE = "incidents.json"
STATE_FORMAT = 1
DEFAULT_HTTP_PORT = 18090  # `python -m vigil.outputs.datex2` without --port


class Datex2Settings(Settings):
    datex2_dir: Path = Field(Path(""), description="Folder of the DATEX II files; empty = <data_dir>/datex2.")
    datex2_keep: int = Field(1440, ge=1, description="MeasuredDataPublication files kept per camera (1440 = a day "
                             "of 1-minute bins); older ones are deleted.")
    datex2_country: str = Field("XX", min_length=2, max_length=2, description="publicationCreator country (ISO "
                                "3166-1 alpha-2) of the publishing traffic centre.")
    datex2_national_identifier: str = Field("vigil", min_length=1, description="publicationCreator national "
                                            "identifier of the publishing traffic centre.")
    datex2_situation_linger_s: float = Field(300.0, ge=0, description="A cleared incident stays in the "
                                             "SituationPublication this long (with its end time), then leaves it.")
    datex2_situation_forget_s: float = Field(86400.0, ge=0, description="A cleared or rejected incident is dropped "
                                             "from the state files this long after it ended (at least the linger "
                                             "time); until then a replayed revision cannot bring it back.")
    datex2_situation_omit: list[str] = Field(default_factory=list, description="Incident kinds not published as "
                                             "DATEX II situations, e.g. [\"object_left\"] where zones are off the "
                                             "road.")
    datex2_camera_positions: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Camera id → (latitude, longitude), WGS 84: the situations of that camera "
        "get a pointByCoordinates; others only the camera's field of view in words.")
    datex2_http_host: str = Field("127.0.0.1", description="Address the sink serves the DATEX II files on.")
    datex2_http_port: int = Field(0, ge=0, le=65535, description="Port the sink serves the DATEX II files on "
                                  "(/datex2/situations.xml, /datex2/<camera>/latest.xml ...); 0 = not served.")
    datex2_public: bool = Field(False, description="Serve the DATEX II files to anyone (an open-data feed); false = "
                                "only to API tokens of role viewer or higher.")

    @field_validator("datex2_camera_positions")
    @classmethod
    def _positions(cls, positions: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for camera_id, (latitude, longitude) in positions.items():
            if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
                raise ValueError(f"camera {camera_id}: ({latitude}, {longitude}) is not a WGS 84 latitude, longitude")
        return positions

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

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        if not isinstance(settings, Datex2Settings):
            settings = Datex2Settings(**settings.model_dump())  # the sink's settings, plus VIGIL_DATEX2_* from env
        self.settings = settings
        self.root = settings.datex2_root
        self.creator = (settings.datex2_country, settings.datex2_national_identifier)
        self.clock = clock
        self.buffer: dict[str, dict[str, dict]] = defaultdict(dict)  # camera → bin_id → bin (replays collapse)
        self.site_tables: dict[str, tuple[int, dict[str, int]]] = {}  # camera → (version, lane → number)
        self.published = 0
        self.failures = 0
        self.book = datex2_situation.SituationBook(round(settings.datex2_situation_linger_s * 1000),
                                                   round(settings.datex2_situation_forget_s * 1000))
        self.unsaved = 0  # incident records applied to the book since its state was last written
        self.dirty_cameras: set[str] = set()  # cameras whose incidents.json is behind the book
        self.feed_written_ms: int | None = None  # when _situations.xml was last written by this output
        self.situations_published = 0
        self.unmapped_kinds: set[str] = set()
        self._load_situations()
        self.server: ThreadingHTTPServer | None = None
        if settings.datex2_http_port:
            try:
                self.server = serve(self.root, settings.datex2_http_host, settings.datex2_http_port,
                                    tokens=TokenStore.of(settings), public=settings.datex2_public,
                                    context=tls.server_context(settings))
            except tls.TlsConfigError as exc:
                raise StartupError(f"DATEX II output: {exc}") from None
            except OSError as exc:
                raise StartupError(f"DATEX II output: cannot serve on {settings.datex2_http_host}:"
                                   f"{settings.datex2_http_port} (VIGIL_DATEX2_HTTP_HOST/PORT): {exc}") from None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def accepts(self, topic: Topic, record_type: str) -> bool:
        return record_type == RECORD_TYPE or record_type in INCIDENT_TYPES

    def write(self, topic: Topic, record_type: str, record: dict, key: bytes | None = None,
              timestamp_ms: int | None = None) -> None:
        if record_type == RECORD_TYPE:
            datex2.validate_bin(record)
            self.buffer[record["camera_id"]][record["bin_id"]] = record
            return
        if record_type == datex2_situation.INCIDENT:
            changed = self.book.apply_incident(record, self._now_ms())
        elif record_type == datex2_situation.VERDICT:
            changed = self.book.apply_verdict(record, self._now_ms())
        else:
            raise ValueError(f"the DATEX II output takes {RECORD_TYPE}, {' and '.join(INCIDENT_TYPES)} records, "
                             f"not {record_type}")
        if changed:
            self.dirty_cameras.add(record["camera_id"])
            self.unsaved += 1

    def pending(self) -> int:
        """Bins and incident records not yet on disk, plus one while the situation feed is due for a rewrite (a
        cleared incident's linger time is over, or the state was loaded at start), so the sink flushes even when no
        record arrives."""
        return sum(len(bins) for bins in self.buffer.values()) + self.unsaved + int(self._feed_due())

    def _feed_due(self) -> bool:
        if self.feed_written_ms is None:
            return bool(self.book.entries)
        change = self.book.next_change_ms(after_ms=self.feed_written_ms)
        return change is not None and change <= self._now_ms()

    def flush(self, stop: threading.Event | None = None) -> bool:
        for camera_id in list(self.buffer):
            try:
                self._publish(camera_id, list(self.buffer[camera_id].values()))
            except OSError as exc:  # disk full, permissions: keep the bins, the offsets stay uncommitted
                self.failures += 1
                log.error("cannot write the DATEX II files of camera %s under %s: %s", camera_id, self.root, exc)
                return False
            del self.buffer[camera_id]
        try:
            self._publish_situations()
        except OSError as exc:  # the book keeps the records; state and feed are written by the next flush
            self.failures += 1
            log.error("cannot write the DATEX II situation files under %s: %s", self.root, exc)
            return False
        return True

    # --- incidents → SituationPublication -------------------------------------------------------------------------

    def _load_situations(self) -> None:
        """The book as the state files left it (a restarted sink continues where the last one stopped)."""
        for path in sorted(self.root.glob(f"*/{STATE_FILE}")):
            try:
                state = json.loads(path.read_text())
                if state.get("format") != STATE_FORMAT:
                    raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT}")
                self.book.load(state["incidents"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable %s: %s", path, exc)

    def _publish_situations(self) -> None:
        now_ms = self._now_ms()
        self.dirty_cameras |= self.book.forget(now_ms)
        feed = self.root / SITUATIONS_FILE
        if not (self.dirty_cameras or self._feed_due() or self.feed_written_ms is None or not feed.exists()):
            return
        by_camera = self.book.by_camera()
        for camera_id in sorted(self.dirty_cameras):
            path = self.root / camera_id / STATE_FILE
            incidents = by_camera.get(camera_id)
            if incidents:
                state = {"format": STATE_FORMAT, "camera_id": camera_id, "incidents": incidents}
                write_atomically(path, json.dumps(state, sort_keys=True, indent=1).encode())
            else:
                path.unlink(missing_ok=True)
        published = self.book.published(now_ms)
        for entry in published:
            kind = entry.incident["kind"]
            if kind not in self.unmapped_kinds and kind not in datex2_situation.MAPPING \
                    and kind not in datex2_situation.OMITTED:
                self.unmapped_kinds.add(kind)
                log.warning("incident kind %r has no DATEX II mapping: its incidents are not published", kind)
        document = datex2_situation.situation_publication(
            published, now_ms, creator=self.creator, positions=self.settings.datex2_camera_positions,
            omit=self.settings.datex2_situation_omit)
        write_atomically(feed, document)
        self.dirty_cameras.clear()
        self.unsaved = 0
        self.feed_written_ms = now_ms
        self.situations_published += 1

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

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def stats(self) -> dict:
        return {"published": self.published, "write_failures": self.failures, "directory": str(self.root),
                "situation_publications": self.situations_published, "incidents_known": len(self.book.entries),
                "unmapped_incident_kinds": sorted(self.unmapped_kinds)}


# --- HTTP ---------------------------------------------------------------------------------------------------------

CAMERA_FILE = re.compile(r"/datex2/(?P<camera>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/"
                         r"(?P<name>latest|sites|measured-[0-9]{1,16})\.xml")


def feed_file(root: Path, url_path: str) -> Path | None:
    """The file under `root` that `url_path` names, or None: only the publications, never anything else."""
    if url_path == "/datex2/situations.xml":
        return root / SITUATIONS_FILE
    match = CAMERA_FILE.fullmatch(url_path)
    if match is None:
        return None
    return root / match["camera"] / f"{match['name']}.xml"


def _etag(stat: os.stat_result) -> str:
    return f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'  # every atomic replace is a new inode


def _not_modified(headers, etag: str, mtime: float) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and int(mtime) <= since.timestamp()
    return False


class Datex2RequestHandler(BaseHTTPRequestHandler):
    """GET/HEAD of the DATEX II files under `root`, to the callers `tokens` lets in (all when `public`); set on the
    subclass `serve` makes."""

    root: Path
    tokens: TokenStore | None = None
    public: bool = False
    server_version = "vigil-datex2"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(send_body=False)

    def _refuse(self, status: int, message: str, headers: dict | None = None, send_body: bool = True) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        for name, value in {**(headers or {}), "Content-Type": "text/plain; charset=utf-8",
                            "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _allowed(self, path: Path | None, send_body: bool) -> bool:
        """Whether the caller may have `path`; answers the refusal itself when not."""
        if self.public:
            return True
        try:
            caller = authorize(self.tokens or TokenStore(None), self.headers.get("Authorization"), "viewer")
        except AuthError as exc:
            self._refuse(exc.status, exc.message, exc.headers, send_body)
            return False
        if caller.cameras is None or path is None:
            return True
        if path.name == SITUATIONS_FILE:
            self._refuse(403, f"{caller.name} is limited to cameras {', '.join(sorted(caller.cameras))}; the "
                              "situations cover every camera: ask for a token without a camera scope", {}, send_body)
            return False
        if path.parent.name not in caller.cameras:
            self._refuse(404, "no such DATEX II publication", {}, send_body)
            return False
        return True

    def _serve(self, send_body: bool) -> None:
        path = feed_file(self.root, urlsplit(self.path).path)
        if not self._allowed(path, send_body):
            return
        try:
            if path is None:
                raise FileNotFoundError
            with open(path, "rb") as file:  # one open file: its stat and its bytes belong together
                stat = os.fstat(file.fileno())
                data = file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self.send_error(404, "no such DATEX II publication")
            return
        etag = _etag(stat)
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
                   "Cache-Control": "no-cache"}
        if _not_modified(self.headers, etag, stat.st_mtime):
            self.send_response(304)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class _TlsServer(ThreadingHTTPServer):
    """Hands each accepted connection's TLS handshake to its own thread (a client that never completes one must not
    stall the others)."""

    context: ssl.SSLContext

    def process_request_thread(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def serve(root: Path, host: str = "127.0.0.1", port: int = DEFAULT_HTTP_PORT, background: bool = True, *,
          tokens: TokenStore | None = None, public: bool = False,
          context: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """An HTTP server of the DATEX II files under `root` (port 0: any free port, see `server_address`), for the API
    tokens in `tokens` of role viewer or higher (for anyone when `public`), over HTTPS with `context`. In the
    background (a daemon thread) unless `background` is False; stop it with `shutdown()` and `server_close()`."""
    handler = type("BoundDatex2RequestHandler", (Datex2RequestHandler,),
                   {"root": Path(root), "tokens": tokens, "public": public})
    if context is None:
        server = ThreadingHTTPServer((host, port), handler)
    else:
        server = _TlsServer((host, port), handler)
        server.context = context
    server.daemon_threads = True
    if background:
        threading.Thread(target=server.serve_forever, name="datex2-http", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    """`python -m vigil.outputs.datex2 [--dir D] [--host H] [--port P]`: serve the files the sink writes."""
    settings = Datex2Settings()
    parser = argparse.ArgumentParser(prog="python -m vigil.outputs.datex2", description="Serve the DATEX II "
                                     "publications (situations, measured data) over HTTP.")
    parser.add_argument("--dir", type=Path, default=settings.datex2_root, help="folder the sink's DATEX II output "
                        "writes (VIGIL_DATEX2_DIR)")
    parser.add_argument("--host", default=settings.datex2_http_host)
    parser.add_argument("--port", type=int, default=settings.datex2_http_port or DEFAULT_HTTP_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    redact.install_log_redaction()
    try:
        context = tls.server_context(settings)
    except tls.TlsConfigError as exc:
        log.error("%s", exc)
        return 2
    tokens = TokenStore.of(settings)
    server = serve(args.dir, args.host, args.port, background=False, tokens=tokens, public=settings.datex2_public,
                   context=context)
    log.info("serving %s on %s://%s:%d/datex2/situations.xml (%s)", args.dir, tls.scheme(settings),
             *server.server_address[:2], "public" if settings.datex2_public else f"{len(tokens)} API tokens")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
