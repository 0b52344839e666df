"""The generic YOLO ONNX model: a YOLOv8-layout export served by a real tritonserver (python backend running
onnxruntime), called through the infer service's Triton adapter; and the YOLOv5 layout decoded directly."""

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from app.stack import manager
from services.infer.detector import TritonDetector
from tests.conftest import make_settings
from vigil.config import REPO_ROOT

pytestmark = pytest.mark.slow  # starts real servers or Flink

MODEL_PY = REPO_ROOT / "models" / "yolo_onnx" / "1" / "model.py"


def _load_model_module():
    spec = importlib.util.spec_from_file_location("yolo_model", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FixedYoloV8(torch.nn.Module):
    """Emits known candidates in the YOLOv8 layout [B, 4 + 80, anchors] (cx, cy, w, h in 640x640 input pixels)."""

    def __init__(self):
        super().__init__()
        raw = torch.zeros(84, 100)  # realistic exports have far more anchors than channels
        raw[:4, 0] = torch.tensor([320, 320, 200, 100]); raw[4 + 2, 0] = 0.9  # car
        raw[:4, 1] = torch.tensor([330, 320, 200, 100]); raw[4 + 2, 1] = 0.8  # overlapping duplicate: NMS drops it
        raw[:4, 2] = torch.tensor([100, 300, 40, 80]); raw[4 + 0, 2] = 0.6  # person
        raw[:4, 3] = torch.tensor([500, 500, 50, 50]); raw[4 + 7, 3] = 0.1  # below the confidence threshold
        self.register_buffer("raw", raw)

    def forward(self, images):
        return self.raw.unsqueeze(0).repeat(images.shape[0], 1, 1) + 0 * images.mean()


@pytest.fixture(scope="module")
def yolo_triton(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo")
    repo = root / "models"
    shutil.copytree(REPO_ROOT / "models" / "yolo_onnx", repo / "yolo_onnx", ignore=shutil.ignore_patterns("__pycache__"))
    torch.onnx.export(FixedYoloV8(), torch.zeros(1, 3, 640, 640), str(repo / "yolo_onnx" / "1" / "model.onnx"),
                      dynamo=False, input_names=["images"], output_names=["output0"], dynamic_axes={"images": {0: "batch"}})
    settings = make_settings(root / "data", model_repository=repo, triton_models=["yolo_onnx"])
    manager.up(settings, only=["triton"], log=lambda *_: None)
    yield settings
    manager.down(settings)


def test_yolo_v8_export_through_triton(yolo_triton):
    detector = TritonDetector(yolo_triton.triton_url, "yolo_onnx")
    frames = [np.zeros((432, 768, 3), np.uint8), np.full((432, 768, 3), 200, np.uint8)]
    for detections in detector.detect(frames, ["cam-a", "cam-b"]):
        order = np.argsort(-detections.confidence)
        assert detections.class_id[order].tolist() == [2, 0], "duplicate suppressed, low score filtered"
        # letterbox 768x432 -> 640x360 at scale 5/6, padded 140 px top: map back to frame pixels
        np.testing.assert_allclose(detections.xyxy[order][0], [264, 156, 504, 276], atol=1.0)
        np.testing.assert_allclose(detections.xyxy[order][1], [96, 144, 144, 240], atol=1.0)
        np.testing.assert_allclose(detections.confidence[order], [0.9, 0.6], atol=1e-5)


def test_yolo_v5_layout_uses_objectness():
    module = _load_model_module()
    raw = np.zeros((100, 5 + 80), np.float32)
    raw[0, :5] = [100, 100, 50, 50, 0.9]; raw[0, 5 + 2] = 0.9  # 0.81 car
    raw[1, :5] = [300, 300, 50, 50, 0.2]; raw[1, 5 + 0] = 0.9  # 0.18 person: below 0.25
    raw[2, :5] = [500, 300, 60, 40, 0.8]; raw[2, 5 + 5] = 0.5  # 0.40 bus
    xyxy, scores, classes = module.decode(raw, 0.25, 0.45, 100)
    order = np.argsort(-scores)
    assert classes[order].tolist() == [2, 5]
    np.testing.assert_allclose(scores[order], [0.81, 0.40], atol=1e-5)
    np.testing.assert_allclose(xyxy[order][0], [75, 75, 125, 125])
