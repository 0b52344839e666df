"""The pretrained detectors in a real tritonserver on real frames, and a camera's fine-tune switched live and rolled
back: YOLOX-Nano finds the person, the car camera's adapted model finds the car the pretrained one calls something
else, a new version is served without restarting Triton, and a rollback brings the old behaviour back."""

import json
import shutil

import av
import numpy as np
import pytest

from app.adapt import repository as repo
from app.adapt.onnx_torch import OnnxModule
from app.stack import manager
from services.infer.detector import TritonDetector
from tests.conftest import CAR_VIDEO, VIDEOS, make_settings
from vigil.config import REPO_ROOT
from vigil.detections import box_iou

pytestmark = pytest.mark.slow  # starts tritonserver

MODELS = REPO_ROOT / "models"
ADAPTED = "yolox_nano__car-park"  # built by `make setup` from the first 14 s of the car footage
TRUTH = json.loads((REPO_ROOT / "load" / "ground_truth.json").read_text())["videos"]


def _frame(path, index):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def _truth(video, index):
    return [b for b in TRUTH[video]["frames"][str(index)] if not b.get("ignore")]


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    """Triton on a copy of the model repository: yolox_nano, nanodet_m and the car camera's fine-tune (version 1)."""
    if not (MODELS / ADAPTED / "1" / "model.onnx").exists():
        pytest.fail(f"models/{ADAPTED} is missing: `make setup` builds it")
    root = tmp_path_factory.mktemp("neural")
    repository = root / "models"
    for name in ("yolox_nano", "nanodet_m", ADAPTED):
        shutil.copytree(MODELS / name, repository / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "[2-9]*"))
    repo.set_policy(repository, ADAPTED, None)
    settings = make_settings(root / "data", model_repository=repository,
                             triton_models=["yolox_nano", "nanodet_m"])  # the fine-tune is found and loaded too
    manager.up(settings, only=["triton"], log=lambda *_: None)
    yield settings
    manager.down(settings)


@pytest.mark.parametrize("model", ["yolox_nano", "nanodet_m"])
def test_pretrained_model_finds_the_person(triton, model):
    video, index = "one-by-one-person-detection.mp4", 440
    truth = _truth(video, index)
    assert truth and all(b["class"] == "person" for b in truth)
    detections = TritonDetector(triton.triton_url, model).detect([_frame(VIDEOS / video, index)], ["room"])[0]
    people = detections.xyxy[detections.class_id == 0]
    iou = box_iou(np.array([b["xyxy"] for b in truth], np.float32), people)
    assert iou.shape[1] and (iou.max(1) >= 0.5).all(), (detections, truth)


def test_adapted_model_finds_the_car_the_pretrained_one_misnames(triton):
    index = 330  # t = 26.4 s: after the 14 s the fine-tune was trained on
    truth = np.array([b["xyxy"] for b in _truth("car-detection.mp4", index)], np.float32)
    frame = _frame(CAR_VIDEO, index)
    detector = TritonDetector(triton.triton_url, "yolox_nano")
    pretrained, adapted = (detector.detect([frame], ["car-park"], model)[0] for model in ("yolox_nano", ADAPTED))
    cars = adapted.xyxy[adapted.class_id == 2]
    assert len(cars) and box_iou(truth, cars).max() >= 0.5, adapted
    pretrained_cars = pretrained.xyxy[pretrained.class_id == 2]
    assert not len(pretrained_cars) or box_iou(truth, pretrained_cars).max() < 0.5, "domain shift: top-down car"
    assert detector.served_version(ADAPTED) == "1"


def test_new_version_is_served_live_and_rolled_back(triton):
    """Publish the pretrained weights as version 2 of the car camera's model: Triton (not restarted) serves it, the
    car is misnamed again; a rollback serves version 1, and the car is back."""
    repository = triton.model_repository
    frame = _frame(CAR_VIDEO, 330)
    truth = np.array([b["xyxy"] for b in _truth("car-detection.mp4", 330)], np.float32)
    detector = TritonDetector(triton.triton_url, "yolox_nano")

    def finds_car():
        dets = detector.detect([frame], ["car-park"], ADAPTED)[0]
        cars = dets.xyxy[dets.class_id == 2]
        return bool(len(cars)) and box_iou(truth, cars).max() >= 0.5

    assert finds_car()
    model, version = repo.publish(repository, "yolox_nano", "car-park",
                                  OnnxModule(MODELS / "yolox_nano" / "1" / "model.onnx"), {"note": "test"})
    assert (model, version) == (ADAPTED, 2)
    assert repo.reload(triton.triton_url, model) is None
    assert not finds_car() and detector.served_version(ADAPTED) == "2"
    repo.set_policy(repository, model, 1)
    assert repo.reload(triton.triton_url, model) is None
    assert finds_car() and detector.served_version(ADAPTED) == "1"
    assert repo.versions(repository, model) == [1, 2], "the newer version stays on disk"
    assert detector.is_served(ADAPTED) and not detector.is_served("yolox_nano__no-such-camera")


def test_weak_boxes_on_request_leave_the_confident_ones_unchanged(triton):
    """Infer asks for boxes down to the tracker's low score (request parameter `min_score`) for ByteTrack's second
    stage: the boxes at the configured threshold are exactly those of a plain call, and the extra ones are weaker."""
    detector = TritonDetector(triton.triton_url, "yolox_nano")
    frame = _frame(VIDEOS / "one-by-one-person-detection.mp4", 861)  # a person at 0.90 and a weak one at 0.11
    plain = detector.detect([frame], ["room"])[0]
    weak = detector.detect([frame], ["room"], min_score=0.1)[0]
    strong = weak.confidence >= plain.confidence.min()
    assert np.allclose(weak.xyxy[strong], plain.xyxy) and (weak.class_id[strong] == plain.class_id).all()
    extra = weak.confidence[~strong]
    assert len(extra) and (extra >= 0.1).all() and (extra < 0.3).all(), weak
    with pytest.raises(Exception, match="min_score must be within"):
        detector.detect([frame], ["room"], min_score=2.0)


def test_a_batch_detected_two_frames_at_a_time_keeps_every_frame_in_order(triton):
    """yolox_nano runs the frames of a request on two threads (parallel_frames): each frame of a batch gets exactly
    the detections it gets alone, in the batch's order, and a bad request still fails the whole call."""
    detector = TritonDetector(triton.triton_url, "yolox_nano")
    frames = [_frame(VIDEOS / "one-by-one-person-detection.mp4", i) for i in (440, 861, 300)] + [_frame(CAR_VIDEO, 330)] * 2
    alone = [detector.detect([f], ["cam"], min_score=0.1)[0] for f in frames]
    together = detector.detect(frames, ["cam"] * len(frames), min_score=0.1)
    assert [len(d) for d in together] == [len(d) for d in alone]
    for one, many in zip(alone, together):
        assert np.allclose(one.xyxy, many.xyxy, atol=1e-3) and (one.class_id == many.class_id).all()
    assert not (len(together[0]) == len(together[3]) and np.allclose(together[0].xyxy, together[3].xyxy))
    with pytest.raises(Exception, match="min_score must be within"):
        detector.detect(frames, ["cam"] * len(frames), min_score=2.0)
