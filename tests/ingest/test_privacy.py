"""Privacy blurring at ingest (services/ingest/privacy.py, vigil/privacy.py): the camera file's `privacy:` section, the
plate search regions, the mosaic, the face decoding against OpenCV's own, and, on the real tritonserver and frame
store, that a blurring camera's frames are stored blurred (the labelled face and plate regions changed, every other
block bit-identical to the same camera without privacy), that a camera without it is stored untouched, and that a
missing or failing privacy model stores nothing: ingest refuses to start, or the camera goes OFFLINE and withholds
its frames until the model answers again."""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from services.ingest.camera import encode_jpeg
from services.ingest.privacy import Blurrer, TritonBoxes
from services.ingest.service import IngestService, own_retention
from services.ingest.settings import IngestSettings
from tests.conftest import CAR_VIDEO, PERSON_VIDEO
from vigil.cameras import Camera, CameraConfigError, load_cameras
from vigil.config import REPO_ROOT
from vigil.framestore import LocalFrameStore
from vigil.privacy import PrivacyConfig, blur, padded, plate_regions
from vigil.runtime import StartupError

TRUTH = json.loads((REPO_ROOT / "load" / "privacy_ground_truth.json").read_text())["videos"]
PLATES = TRUTH["car-detection.mp4"]["plates"]
FACES = TRUTH["one-by-one-person-detection.mp4"]["faces"]
CAR_CLIP = (208, 232)  # the red car's rear plate, which the plate model finds with room to spare (0.8-0.99)
ROOM_CLIP = (851, 862)  # a man walks out in profile


# ---- pure ---------------------------------------------------------------------------------------------------------

def test_camera_file_privacy_section(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: gate\n    url: rtsp://camera/gate\n"
                    "    privacy: {blur: [faces, plates], retention_hours: 6}\n"
                    "  - id: yard\n    url: rtsp://camera/yard\n")
    gate, yard = load_cameras(path).cameras
    assert gate.privacy.blur == ["faces", "plates"] and gate.privacy.retention_hours == 6 and yard.privacy is None
    for text, message in (("{blur: [eyes]}", "privacy.blur"), ("{blur: [faces, faces]}", "more than once"),
                          ("{retention_hours: 0}", "retention_hours"), ("{blurr: [faces]}", "blurr")):
        path.write_text(f"cameras:\n  - {{id: gate, url: rtsp://camera/gate, privacy: {text}}}\n")
        with pytest.raises(CameraConfigError, match=message):
            load_cameras(path)


def test_a_camera_retention_can_only_shorten_the_stores():
    settings = IngestSettings(frame_retention_hours=24)
    short = Camera(id="a", url="rtsp://x/a", privacy=PrivacyConfig(retention_hours=6))
    assert own_retention([short, Camera(id="b", url="rtsp://x/b")], settings) == {"a": 6}
    with pytest.raises(StartupError, match="only shorten"):
        own_retention([Camera(id="c", url="rtsp://x/c", privacy=PrivacyConfig(retention_hours=48))], settings)


def test_a_cameras_own_retention_removes_only_its_frames(tmp_path):
    store = LocalFrameStore(tmp_path / "frames")
    now = int(time.time() * 1000)
    for camera in ("short", "long"):
        store.put(camera, 0, now - 8 * 3600 * 1000, b"old", "jpg")
        store.put(camera, 1, now, b"new", "jpg")
    assert store.delete_older_than(now - 6 * 3600 * 1000, "short") == 1  # what ingest runs for retention_hours: 6
    assert len(store.delete_frames("short", dry_run=True)) == 1 and len(store.delete_frames("long", dry_run=True)) == 2


def test_plate_regions_are_the_ends_of_the_vehicle():
    # a car driving down the middle of a 768x432 view: a band at its front and one at its rear
    top, bottom = plate_regions(np.array([[300, 100, 450, 350]]), 768, 432)
    assert top[1] < 100 < top[3] < 225 and 225 < bottom[1] < 350 < bottom[3]
    assert top[0] < 300 and top[2] > 450
    # cut by the top edge: only its visible (bottom) end, even when what is in view is wider than tall
    (only,) = plate_regions(np.array([[280, 0, 400, 70]]), 768, 432)
    assert only[3] > 70 and only[1] > 0
    # a car crossing the view: bands at its left and right ends
    left, right = plate_regions(np.array([[100, 200, 400, 300]]), 768, 432)
    assert left[2] < 250 < right[0] and left[1] < 200 and left[3] > 300
    # about square, its long axis a guess (the red car leaving at the top, box 8 px below the edge): both axes'
    # ends are searched, and the rear plate (car-park frame 230, hand-labelled) lies inside one of the bands
    regions = plate_regions(np.array([[325, 8, 426, 91]]), 768, 432)
    assert len(regions) == 4
    assert any(x1 <= 367 and y1 <= 61 and x2 >= 390 and y2 >= 72 for x1, y1, x2, y2 in regions), regions


def test_blur_changes_only_the_padded_boxes():
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (432, 768, 3), dtype=np.uint8)
    box = np.array([[100, 50, 160, 90]])
    out = blur(frame, box)
    (x1, y1, x2, y2), = padded(box, 768, 432)
    inside = np.zeros(frame.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    assert np.array_equal(out[~inside], frame[~inside])
    # a mosaic: few distinct blocks left where the noise was, nothing like the original
    assert len(np.unique(out[inside].reshape(-1, 3), axis=0)) <= 40
    assert np.abs(out[inside].astype(int) - frame[inside]).mean() > 40


def test_face_decoding_matches_opencv():
    """The face model's own decoding (models/privacy_face/1/model.py) gives OpenCV FaceDetectorYN's boxes."""
    from app.inprocess import load_model_module

    module = load_model_module("privacy_face")
    path = REPO_ROOT / "models" / "privacy_face" / "1" / "model.onnx"
    frame = frames_of(PERSON_VIDEO, 855, 856)[0]
    ours, scores = module.PrivacyDetector(path, conf_threshold=0.3).detect_one(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    opencv = cv2.FaceDetectorYN.create(str(path), "", (frame.shape[1], frame.shape[0]), 0.3, 0.3, 5000)
    found = opencv.detect(frame)[1]
    assert found is not None and len(ours) == len(found) >= 1
    theirs = np.concatenate([found[:, :2], found[:, :2] + found[:, 2:4]], 1)
    order = np.argsort(-found[:, -1])
    assert np.allclose(ours, theirs[order], atol=1.0) and np.allclose(scores, found[order, -1], atol=0.01)


# ---- the real tritonserver and frame store ------------------------------------------------------------------------

def frames_of(video: Path, start: int, end: int) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if start <= i < end]


def cut(video: Path, start: int, end: int, out: Path) -> Path:
    """Frames [start, end) of the footage as a clip of their own (near-lossless H.264, same rate)."""
    with av.open(str(video)) as source:
        rate = source.streams.video[0].average_rate
    frames = frames_of(video, start, end)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "4", "preset": "veryfast"}
        for bgr in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        container.mux(stream.encode())
    return out


def stored(settings, camera_id: str) -> dict[int, bytes]:
    """sequence → stored JPEG bytes of the camera."""
    store = LocalFrameStore(Path(settings.frame_store_uri.removeprefix("file://")))
    found = store.delete_frames(camera_id, dry_run=True)
    folder = store.root / camera_id
    return {int(name.split("-")[1].split(".")[0]): next(folder.rglob(name)).read_bytes() for name in found}


def decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def grid_mask(boxes: np.ndarray, shape, block: int = 16, bleed: int = 2) -> np.ndarray:
    """The JPEG blocks (4:2:0: 16x16) that the padded boxes touch, and the `bleed` pixels round them that the
    decoder's chroma upsampling mixes in: only there may two encodings of the frame differ."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in padded(boxes, shape[1], shape[0]):
        mask[max(0, y1 // block * block - bleed):-(-y2 // block) * block + bleed,
             max(0, x1 // block * block - bleed):-(-x2 // block) * block + bleed] = True
    return mask


@pytest.fixture
def privacy_settings(pipeline_settings):
    return IngestSettings(**pipeline_settings.model_dump())


def test_blurring_camera_is_stored_blurred_and_the_other_untouched(privacy_settings, tmp_path):
    car = cut(CAR_VIDEO, *CAR_CLIP, tmp_path / "car.mp4")
    room = cut(PERSON_VIDEO, *ROOM_CLIP, tmp_path / "room.mp4")
    cameras = [
        Camera(id="car-private", url=str(car), fps=12.5, pace="fast",
               privacy=PrivacyConfig(blur=["faces", "plates"], vehicle_model="yolox_nano__car-park")),
        Camera(id="car-plain", url=str(car), fps=12.5, pace="fast"),
        Camera(id="room-private", url=str(room), fps=10, pace="fast", privacy=PrivacyConfig(blur=["faces"])),
        Camera(id="room-plain", url=str(room), fps=10, pace="fast"),
    ]
    service = IngestService(cameras, privacy_settings)
    summary = service.run(threading.Event(), max_seconds=240)
    blurrer = Blurrer(privacy_settings, cameras)  # the same models, asked again for the regions they blurred
    blurrer.check()
    checked = {"plates": 0, "faces": 0}
    for name, clip, start, kind, truth in (("car", car, CAR_CLIP[0], "plates", PLATES),
                                           ("room", room, ROOM_CLIP[0], "faces", FACES)):
        raw = frames_of(clip, 0, 1000)
        private, plain = stored(privacy_settings, f"{name}-private"), stored(privacy_settings, f"{name}-plain")
        assert len(private) == len(plain) == len(raw) == summary[f"{name}-private"]["frames_published"]
        assert summary[f"{name}-private"]["frames_blurred"] == len(raw)
        assert "frames_blurred" not in summary[f"{name}-plain"]
        for sequence, bgr in enumerate(raw):
            # without privacy: exactly the decoded frame, as JPEG
            assert plain[sequence] == encode_jpeg(bgr, privacy_settings.jpeg_quality)
            # with privacy: every JPEG block away from the blurred boxes is bit-identical to the plain frame
            regions = blurrer.regions(f"{name}-private", bgr)
            boxes = np.concatenate([regions["faces"], regions["plates"]])
            outside = ~grid_mask(boxes, bgr.shape)
            ours, theirs = decoded(private[sequence]), decoded(plain[sequence])
            assert np.array_equal(ours[outside], theirs[outside]), (name, sequence)
            # and the labelled face or plate is hidden
            for x1, y1, x2, y2 in truth.get(str(start + sequence), []):
                difference = np.abs(ours[y1:y2, x1:x2].astype(int) - theirs[y1:y2, x1:x2]).mean()
                assert difference > 6, (name, start + sequence, difference)
                checked[kind] += 1
    assert checked["plates"] >= 5 and checked["faces"] >= 8


def test_missing_privacy_model_refuses_to_start(privacy_settings, tmp_path):
    settings = IngestSettings(**{**privacy_settings.model_dump(), "privacy_face_model": "privacy_face_missing"})
    camera = Camera(id="room-missing", url=str(PERSON_VIDEO), pace="fast", privacy=PrivacyConfig(blur=["faces"]))
    with pytest.raises(StartupError) as error:
        IngestService([camera], settings)
    message = str(error.value)
    assert "room-missing" in message and "privacy_face_missing" in message and "make setup" in message
    assert stored(settings, "room-missing") == {}


def test_failing_privacy_model_withholds_frames_until_it_answers(privacy_settings):
    camera = Camera(id="room-outage", url=str(PERSON_VIDEO), fps=5, speed=4,
                    privacy=PrivacyConfig(blur=["faces"]))
    service = IngestService([camera], privacy_settings)
    worker = service.cameras.workers[0]
    triton = TritonBoxes(privacy_settings.triton_url, 30).client
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(stored(privacy_settings, camera.id)) >= 3, "first blurred frames")
        triton.unload_model(privacy_settings.privacy_face_model)
        wait_until(lambda: worker.counters.state == "OFFLINE" and "privacy_face" in (worker.counters.message or ""),
                   "the camera reported OFFLINE with the privacy model's failure")
        withheld_from = len(stored(privacy_settings, camera.id))
        time.sleep(3)  # the camera retries meanwhile (reconnect back-off 0.2-1 s)
        assert len(stored(privacy_settings, camera.id)) == withheld_from, "a frame was stored while blurring failed"
        triton.load_model(privacy_settings.privacy_face_model)
        wait_until(lambda: len(stored(privacy_settings, camera.id)) > withheld_from, "frames again once it answers")
    finally:
        stop.set()
        thread.join(60)
        TritonBoxes(privacy_settings.triton_url, 30).ensure(privacy_settings.privacy_face_model)
    blurred = service.cameras.publisher.blurrer.summary()[camera.id]["frames_blurred"]
    assert len(stored(privacy_settings, camera.id)) == blurred  # every stored frame went through the blur


def wait_until(condition, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
