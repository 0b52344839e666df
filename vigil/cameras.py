"""The camera configuration file (YAML), validated at start-up with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vigil.geometry import TrafficGeometry
from vigil.privacy import PrivacyConfig
from vigil.topology import Topology
from vigil.zones import RuleSettings, Zone


# A misspelt key (`zone:` for `zones:`) would otherwise be dropped without a word, and NaN or infinite numbers would
# load and fail later, far from the file: both are errors that name the field.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Camera(BaseModel):
    model_config = STRICT

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str = Field(description="File path, file://, rtsp://, rtsps://, http:// or https:// URL.")
    fps: float = Field(5.0, gt=0, le=60, description="Target sampling rate (frames per second published).")
    loop: bool = Field(False, description="Files only: start again at the end.")
    pace: Literal["native", "fast"] = Field("native", description="Files only: real time, or as fast as possible.")
    speed: float = Field(1.0, gt=0, description="Files with pace=native: playback speed factor.")
    clock: Literal["wall", "video"] = Field("wall", description="Capture time: wall clock at decode (live "
                                            "cameras), or stream start + presentation time (replays at any pace).")
    zones: list[Zone] = Field(default_factory=list)
    rules: RuleSettings = Field(default_factory=dict, description="Anomaly rule settings for the whole camera: "
                                "defaults for its zones (a zone's own `rules:` win) and for camera-wide rules "
                                "such as crowding, e.g. {crowding: {persons: 6}}.")
    site: str = Field("default", description="Cameras of one site are matched against each other by the re-ID job.")
    traffic: TrafficGeometry | None = Field(None, description="Lanes, count lines, detection zones and calibration "
                                            "for traffic counting (the traffic job); none: not counted.")
    privacy: PrivacyConfig | None = Field(None, description="Blurring before storage ({blur: [faces, plates]}) and the "
                                          "camera's own frame retention (retention_hours); none: stored as captured.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlparse(url).scheme
        if scheme not in ("", "file", "rtsp", "rtsps", "http", "https"):
            raise ValueError(f"unsupported URL scheme {scheme!r} (use a file path, rtsp://, http(s)://)")
        return url

    @property
    def is_file(self) -> bool:
        return urlparse(self.url).scheme in ("", "file")

    @property
    def source(self) -> str:
        """What PyAV opens: a local path for files, the URL otherwise."""
        parsed = urlparse(self.url)
        return parsed.path if parsed.scheme == "file" else self.url


class CameraLink(BaseModel):
    """Objects can go from one camera's view to another's, taking between min and max transit seconds (from leaving
    `from_camera` to entering `to_camera`; negative when the views overlap)."""

    model_config = STRICT

    from_camera: str
    to_camera: str
    min_transit_s: float = 0.0
    max_transit_s: float = Field(gt=0)
    bidirectional: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_transit_s > self.max_transit_s:
            raise ValueError(f"min_transit_s ({self.min_transit_s}) is above max_transit_s ({self.max_transit_s})")
        if self.from_camera == self.to_camera:
            raise ValueError(f"a link joins two different cameras, not {self.from_camera!r} to itself")
        return self


class CameraConfig(BaseModel):
    model_config = STRICT

    cameras: list[Camera] = Field(min_length=1)
    links: list[CameraLink] = Field(default_factory=list, description="Camera topology for re-identification.")

    @model_validator(mode="after")
    def _unique_ids(self):
        ids = [c.id for c in self.cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique; repeated: {duplicates}")
        sites = {c.id: c.site for c in self.cameras}
        for link in self.links:
            unknown = [c for c in (link.from_camera, link.to_camera) if c not in sites]
            if unknown:
                raise ValueError(f"link {link.from_camera} -> {link.to_camera} names unknown cameras {unknown}")
            if sites[link.from_camera] != sites[link.to_camera]:
                raise ValueError(f"link {link.from_camera} -> {link.to_camera} joins two sites; links stay inside one")
        return self

    def topology(self) -> Topology:
        return Topology.from_config([link.model_dump() for link in self.links], {c.id: c.site for c in self.cameras})


class CameraConfigError(ValueError):
    pass


def load_cameras(path: Path) -> CameraConfig:
    """Parse and validate a camera file. Relative file paths are resolved against the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CameraConfigError(f"camera config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8 text
        raise CameraConfigError(f"camera config {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"camera config {path} is not valid YAML: {exc}") from None
    try:
        config = CameraConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CameraConfigError(f"camera config {path} is invalid: {problems}") from None
    for camera in config.cameras:
        if camera.is_file and not Path(camera.source).is_absolute():
            camera.url = str((path.parent / camera.source).resolve())
    return config
