"""`vigil triton-gpu-repo`: the repository for a GPU Triton parses as Triton's own ModelConfig (strictly), names the
native onnxruntime backend with TensorRT FP16 on the GPU and links the weights in ../shared; the `--device cpu` render
runs in the embedded tritonserver, where the detector's python model sends the letterboxed tensor to the network model
with a BLS call and gives the same detections as the in-process detector. No GPU was used: the GPU render is checked
as configuration only."""

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from app import triton_gpu
from app.inprocess import pretrained_detector
from app.stack import manager
from services.infer.detector import TritonDetector
from tests.conftest import PERSON_VIDEO, make_settings
from tests.infer.test_neural_detector import _frame, _truth
from vigil.config import REPO_ROOT
from vigil.detections import box_iou

MODELS = REPO_ROOT / "models"
SHARED_DETECTORS = (REPO_ROOT.parent / "shared" / "models" / "detectors").resolve()


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())  # unknown fields fail


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-repo")
    return {device: (root / device, triton_gpu.render(MODELS, root / device, device=device))
            for device in ("gpu", "cpu")}


def test_every_rendered_config_parses_strictly_and_targets_tensorrt_on_the_gpu(renders):
    gpu, _ = renders["gpu"]
    detectors = triton_gpu.default_models(MODELS)
    assert {"yolox_nano", "nanodet_m"} <= set(detectors)
    for device, (out, lines) in renders.items():
        assert len(lines) == len(detectors)
        configs = sorted(out.glob("*/config.pbtxt"))
        assert {p.parent.name for p in configs} == set(detectors) | {m + "_onnx" for m in detectors}, device
        for path in configs:
            config = _parse(path)
            assert config.name == path.parent.name
    for model in detectors:
        raw = _parse(gpu / f"{model}_onnx" / "config.pbtxt")
        assert raw.platform == "onnxruntime_onnx" and raw.max_batch_size == 0
        assert [g.kind for g in raw.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
        (trt,) = raw.optimization.execution_accelerators.gpu_execution_accelerator
        assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
        assert int(trt.parameters["max_workspace_size_bytes"]) > 0 and trt.parameters["trt_engine_cache_enable"] == "1"
        wrapper = _parse(gpu / model / "config.pbtxt")
        assert wrapper.backend == "python" and wrapper.parameters["raw_model"].string_value == f"{model}_onnx"
        assert [g.kind for g in wrapper.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
        assert [i.name for i in wrapper.input] == ["FRAMES", "CAMERA_ID"]
        cpu_raw = _parse(renders["cpu"][0] / f"{model}_onnx" / "config.pbtxt")
        assert cpu_raw.backend == "python" and not cpu_raw.platform and not cpu_raw.HasField("optimization")
    text = (gpu / "yolox_nano_onnx" / "config.pbtxt").read_text()
    with pytest.raises(text_format.ParseError):  # the parse is strict: a misspelt field fails
        text_format.Parse(text.replace("instance_group", "instance_groups"), model_config_pb2.ModelConfig())


def test_tensor_names_and_dims_come_from_the_onnx(renders):
    gpu, _ = renders["gpu"]
    yolox = _parse(gpu / "yolox_nano_onnx" / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in yolox.input] == [("images", [1, 3, 416, 416])]
    assert [(t.name, list(t.dims)) for t in yolox.output] == [("output", [1, 3549, 85])]
    assert yolox.input[0].data_type == model_config_pb2.TYPE_FP32
    nanodet = _parse(gpu / "nanodet_m_onnx" / "config.pbtxt")  # its 158 weight "inputs" are initializers: not listed
    assert [t.name for t in nanodet.input] == ["input.1"]
    assert sorted(list(t.dims)[-1] for t in nanodet.output) == [32, 32, 32, 80, 80, 80]


def test_the_weights_are_linked_from_shared_not_copied(renders):
    for out, _ in renders.values():
        for model, onnx in (("yolox_nano", "yolox_nano_416.onnx"), ("nanodet_m", "nanodet_m_416_opencvzoo.onnx")):
            for folder in (model, f"{model}_onnx"):
                link = out / folder / "1" / "model.onnx"
                assert link.is_symlink() and link.resolve() == SHARED_DETECTORS / onnx
            assert (out / model / "1" / "model.py").resolve() == (MODELS / "yolox_nano" / "1" / "model.py").resolve()
    cpu, _ = renders["cpu"]
    assert (cpu / "yolox_nano_onnx" / "1" / "model.py").resolve() == MODELS / "onnx_runner" / "1" / "model.py"
    assert not (renders["gpu"][0] / "yolox_nano_onnx" / "1" / "model.py").exists()


def test_bad_input_is_a_clear_error_with_exit_2(tmp_path, capsys):
    assert triton_gpu.main(["triton-gpu-repo", "--out", str(tmp_path / "r"), "--models", "unknown"]) == 2
    err = capsys.readouterr().err
    assert "unknown model(s) unknown" in err and "yolox_nano" in err
    assert not (tmp_path / "r").exists(), "nothing is written on bad input"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert triton_gpu.main(["triton-gpu-repo", "--out", str(tmp_path / "mine"), "--models", "yolox_nano"]) == 2
    assert "is not empty" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").exists()


@pytest.mark.slow  # starts tritonserver
def test_cpu_render_serves_the_detector_through_bls(tmp_path):
    """yolox_nano (python: letterbox, decode, NMS) → yolox_nano_onnx (the ONNX, here in the python stand-in) in the
    embedded tritonserver: the same detections as the in-process detector, and the person found."""
    repository = tmp_path / "models"
    triton_gpu.render(MODELS, repository, ["yolox_nano"], device="cpu")
    assert sorted(p.name for p in repository.iterdir() if p.is_dir()) == ["yolox_nano", "yolox_nano_onnx"]
    settings = make_settings(tmp_path / "data", model_repository=repository,
                             triton_models=["yolox_nano_onnx", "yolox_nano"])
    video, index = PERSON_VIDEO.name, 440
    frame = _frame(PERSON_VIDEO, index)
    manager.up(settings, only=["triton"], log=lambda *_: None)
    try:
        detector = TritonDetector(settings.triton_url, "yolox_nano")
        served = detector.detect([frame], ["room"])[0]
        grpcclient.InferenceServerClient(settings.triton_url).unload_model("yolox_nano_onnx")
        with pytest.raises(InferenceServerException, match="yolox_nano_onnx"):  # the BLS error names the raw model
            detector.detect([frame], ["room"])
    finally:
        manager.down(settings)
    xyxy, scores, classes = pretrained_detector("yolox_nano").process("room", frame)
    assert len(xyxy) and list(served.class_id) == list(classes)
    np.testing.assert_allclose(served.xyxy, xyxy, atol=1e-3)
    np.testing.assert_allclose(served.confidence, scores, atol=1e-5)
    truth = np.array([b["xyxy"] for b in _truth(video, index)], np.float32)
    people = served.xyxy[served.class_id == 0]
    assert len(people) and (box_iou(truth, people).max(1) >= 0.5).all()
