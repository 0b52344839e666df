"""Blurring at ingest: the faces and licence plates of a camera with `privacy: {blur: [...]}` are found by detectors
in Triton and blurred before the frame is written to the frame store, so nothing downstream (infer, re-ID crops,
evidence clips, the console) ever reads the raw pixels.

Why here: ingest is the only process that holds a frame before it is stored, and holding frames back until infer
has detected them would mean storing them raw first. So ingest runs what the blur needs itself:
- faces: the face model (`privacy_face`, YuNet) on the whole frame at its own size;
- plates: the camera's vehicle detector (the same Triton model infer uses for it: the camera's fine-tune when served)
  on the whole frame, then the plate model (`privacy_plate`, LPD-YuNet) on crops round the ends of each vehicle
  (vigil/privacy.py), which it enlarges: on a wide view a plate is ~25 px across, too small for it in a full frame.
The vehicle detection is repeated by infer on the blurred frame; that is the price of never storing raw pixels.

Fail closed: a camera whose privacy models are not served does not start (StartupError naming the model and what to
fix), and a frame whose blur fails at run time (Triton down, a model unloaded or failing) is never stored: the error
propagates to the camera worker, which reports the camera OFFLINE with the reason and reconnects with back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np
import tritonclient.grpc as grpcclient

from services.ingest.settings import IngestSettings
from vigil.cameras import Camera
from vigil.detector_models import adapted_name
from vigil.metrics import FRAMES_DROPPED, FRAMES_SEEN
from vigil.privacy import VEHICLE_CLASSES, blur, plate_regions
from vigil.runtime import StartupError

log = logging.getLogger("vigil.ingest.privacy")


class PrivacyUnavailable(RuntimeError):
    """A privacy detector could not be asked or failed: the frame must not be stored."""


class TritonBoxes:
    """Vigil's detector contract (FRAMES uint8 [B,H,W,3] RGB + CAMERA_ID → BOXES, SCORES, CLASSES, COUNT) over gRPC,
    one client per calling thread (each camera decodes in its own)."""

    def __init__(self, url: str, timeout_s: float):
        self.url, self.timeout_s = url, timeout_s
        self._local = threading.local()

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        if getattr(self._local, "client", None) is None:
            self._local.client = grpcclient.InferenceServerClient(self.url)
        return self._local.client

    def served(self, model: str) -> bool:
        try:
            return bool(self.client.is_model_ready(model, client_timeout=self.timeout_s))
        except Exception:  # noqa: BLE001 - unknown models and an unreachable server both mean "not served"
            return False

    def ensure(self, model: str) -> None:
        """The model is ready, or Triton (explicit model control) loads it now; else PrivacyUnavailable says why."""
        if self.served(model):
            return
        try:
            self.client.load_model(model, client_timeout=max(self.timeout_s, 60.0))
        except Exception as exc:  # noqa: BLE001 - tritonclient's errors carry Triton's reason
            raise PrivacyUnavailable(f"Triton at {self.url} does not serve {model} and could not load it: "
                                     f"{_first_line(exc)}") from None
        if not self.served(model):
            raise PrivacyUnavailable(f"Triton at {self.url} loaded {model} but it is not ready")

    def detect(self, model: str, rgb: np.ndarray, camera_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes xyxy, scores, classes) of one image; PrivacyUnavailable when Triton does not answer."""
        batch = np.ascontiguousarray(rgb[None])
        camera = np.array([[camera_id.encode()]], dtype=object)
        inputs = [grpcclient.InferInput("FRAMES", list(batch.shape), "UINT8"),
                  grpcclient.InferInput("CAMERA_ID", [1, 1], "BYTES")]
        inputs[0].set_data_from_numpy(batch)
        inputs[1].set_data_from_numpy(camera)
        try:
            response = self.client.infer(model, inputs, client_timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the frame is not blurred
            raise PrivacyUnavailable(f"{model} at {self.url} failed: {_first_line(exc)}") from None
        n = int(response.as_numpy("COUNT")[0, 0])
        return (response.as_numpy("BOXES")[0, :n], response.as_numpy("SCORES")[0, :n],
                response.as_numpy("CLASSES")[0, :n])


@dataclass(frozen=True)
class Plan:
    """What one camera's frames go through."""

    faces: bool
    plates: bool
    vehicle_model: str = ""


@dataclass
class Tally:
    frames: int = 0
    faces: int = 0
    plates: int = 0
    vehicles: int = 0
    seconds: float = 0.0


class Blurrer:
    """Blurs the frames of the cameras that ask for it; `check()` at start-up, `blur()` per frame."""

    def __init__(self, settings: IngestSettings, cameras: list[Camera], boxes: TritonBoxes | None = None):
        self.settings = settings
        self.boxes = boxes or TritonBoxes(settings.triton_url, settings.privacy_timeout_s)
        self.cameras = {c.id: c for c in cameras if c.privacy and c.privacy.blur}
        self.plans: dict[str, Plan] = {}
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self._lock = threading.Lock()

    def applies(self, camera_id: str) -> bool:
        return camera_id in self.cameras

    def check(self) -> None:
        """Every model a blurring camera needs is served (loaded now if Triton allows); else a StartupError that names
        the cameras, the models and what to do. Called before any frame is read: nothing is stored unblurred."""
        problems = []
        for camera in self.cameras.values():
            wanted = set(camera.privacy.blur)
            vehicle_model = ""
            if "plates" in wanted:
                vehicle_model = camera.privacy.vehicle_model or self._default_vehicle_model(camera.id)
            models = ([self.settings.privacy_face_model] if "faces" in wanted else []) + \
                     ([vehicle_model, self.settings.privacy_plate_model] if "plates" in wanted else [])
            for model in models:
                try:
                    self.boxes.ensure(model)
                except PrivacyUnavailable as exc:
                    problems.append(f"camera {camera.id} blurs {', '.join(sorted(wanted))}: {exc}")
            self.plans[camera.id] = Plan("faces" in wanted, "plates" in wanted, vehicle_model)
        if problems:
            raise StartupError("privacy blurring cannot start, so no frame would be stored unblurred: "
                               + "; ".join(problems) + ". Run `make setup` (it links the detectors of "
                               "../shared/models/privacy after checking privacy.sha256) and serve the models from "
                               "models/ (VIGIL_TRITON_MODELS), or take `privacy:` off the camera.")
        for camera_id, plan in self.plans.items():
            log.info("camera %s: blurring %s before storage%s", camera_id,
                     " and ".join(t for t, on in (("faces", plan.faces), ("plates", plan.plates)) if on),
                     f" (vehicles from {plan.vehicle_model})" if plan.plates else "")

    def _default_vehicle_model(self, camera_id: str) -> str:
        own = adapted_name(self.settings.privacy_vehicle_model, camera_id)
        return own if self.boxes.served(own) else self.settings.privacy_vehicle_model

    def regions(self, camera_id: str, bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The boxes to blur in one frame, by kind (faces, plates, and the vehicles searched); PrivacyUnavailable when
        any detector fails."""
        plan = self.plans[camera_id]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        found = {"faces": np.zeros((0, 4), np.float32), "plates": np.zeros((0, 4), np.float32),
                 "vehicles": np.zeros((0, 4), np.float32)}
        if plan.faces:
            found["faces"] = self.boxes.detect(self.settings.privacy_face_model, rgb, camera_id)[0]
        if plan.plates:
            boxes, _, classes = self.boxes.detect(plan.vehicle_model, rgb, camera_id)
            found["vehicles"] = boxes[np.isin(classes, VEHICLE_CLASSES)]
            plates = []
            for x1, y1, x2, y2 in plate_regions(found["vehicles"], width, height):
                crop_boxes = self.boxes.detect(self.settings.privacy_plate_model,
                                               np.ascontiguousarray(rgb[y1:y2, x1:x2]), camera_id)[0]
                plates.append(crop_boxes + np.array([x1, y1, x1, y1], np.float32))
            if plates:
                found["plates"] = np.concatenate(plates)
        return found

    def blur(self, camera: Camera, bgr: np.ndarray) -> np.ndarray:
        """The frame with the camera's faces and plates blurred; raises PrivacyUnavailable (count it; never store the
        frame) when a detector fails."""
        started = time.perf_counter()
        try:
            found = self.regions(camera.id, bgr)
        except PrivacyUnavailable:
            FRAMES_DROPPED.labels("ingest", camera.id, "privacy blur failed").inc()
            raise
        blurred = blur(bgr, np.concatenate([found["faces"], found["plates"]]))
        with self._lock:
            tally = self.tallies[camera.id]
            tally.frames += 1
            tally.faces += len(found["faces"])
            tally.plates += len(found["plates"])
            tally.vehicles += len(found["vehicles"])
            tally.seconds += time.perf_counter() - started
        FRAMES_SEEN.labels(camera.id, "blurred").inc()
        return blurred

    def summary(self) -> dict[str, dict]:
        """Per blurring camera: frames blurred, faces and plates blurred, vehicles searched, mean ms per frame."""
        with self._lock:
            return {camera_id: {"frames_blurred": t.frames, "faces_blurred": t.faces, "plates_blurred": t.plates,
                                "vehicles_searched": t.vehicles,
                                "blur_ms_per_frame": round(1000 * t.seconds / t.frames, 1) if t.frames else None}
                    for camera_id, t in self.tallies.items()}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
