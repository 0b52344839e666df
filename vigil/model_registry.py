"""The model registry: `<root>/<camera_id>/v<N>/{model.pt, meta.json}` plus `<root>/<camera_id>/approved.json`
naming the version the job must use. A local directory here; in production the same layout on shared or object
storage. Writes are atomic (temp file + rename), so the job never reads half an artifact."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from vigil.anomaly_model import SceneAutoencoder, ScoringModel
from vigil.config import Settings


class AnomalySettings(Settings):
    anomaly_registry: Path = Field(Path(""), description="Model registry root; empty = <data_dir>/models/anomaly.")
    anomaly_window_ms: int = Field(2000, ge=100, description="Tumbling event-time window of the scene features.")
    incident_merge_gap_s: float = Field(30.0, gt=0, description="An event joins an open incident of its kind sharing "
                                                                "a track or zone if it starts within this of its "
                                                                "latest evidence (s).")
    incident_clear_after_s: float = Field(10.0, gt=0, description="A track incident clears when none of its tracks "
                                                                  "was seen for this long (s).")
    incident_quiet_clear_s: float = Field(30.0, gt=0, description="A camera-wide incident clears when no event joined "
                                                                  "it for this long (s).")

    @property
    def registry_root(self) -> Path:
        return self.anomaly_registry if str(self.anomaly_registry) not in ("", ".") else self.data_dir / "models" / "anomaly"


class Registry:
    def __init__(self, root: Path):
        self.root = Path(root)

    def versions(self, camera_id: str) -> list[str]:
        folder = self.root / camera_id
        if not folder.is_dir():
            return []
        return sorted((p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("v")), key=lambda v: int(v[1:]))

    def save(self, camera_id: str, model: ScoringModel, metadata: dict) -> str:
        existing = self.versions(camera_id)
        version = f"v{int(existing[-1][1:]) + 1 if existing else 1}"
        folder = self.root / camera_id / version
        tmp = folder.with_name(f".{version}.tmp")
        tmp.mkdir(parents=True, exist_ok=False)
        torch.save({"state_dict": model.net.state_dict(), "mean": model.mean, "std": model.std,
                    "dim": len(model.mean)}, tmp / "model.pt")
        (tmp / "meta.json").write_text(json.dumps({**metadata, "version": version, "camera_id": camera_id,
                                                   "feature_names": model.feature_names,
                                                   "created_ts_ms": int(time.time() * 1000)}, indent=2))
        os.replace(tmp, folder)
        return version

    def approve(self, camera_id: str, version: str) -> None:
        if version not in self.versions(camera_id):
            raise ValueError(f"camera {camera_id} has no model version {version}; versions: {self.versions(camera_id)}")
        target = self.root / camera_id / "approved.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": version, "approved_ts_ms": int(time.time() * 1000)}))
        os.replace(tmp, target)

    def approved(self, camera_id: str) -> str | None:
        try:
            return json.loads((self.root / camera_id / "approved.json").read_text())["version"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def metadata(self, camera_id: str, version: str) -> dict:
        return json.loads((self.root / camera_id / version / "meta.json").read_text())

    def load(self, camera_id: str, version: str) -> ScoringModel:
        blob = torch.load(self.root / camera_id / version / "model.pt", weights_only=False)
        net = SceneAutoencoder(blob["dim"])
        net.load_state_dict(blob["state_dict"])
        net.eval()
        return ScoringModel(net, np.asarray(blob["mean"]), np.asarray(blob["std"]),
                            self.metadata(camera_id, version)["feature_names"])
