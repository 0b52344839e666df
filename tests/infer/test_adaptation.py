"""Per-camera adaptation on the real car footage: the ONNX graph runs and exports from torch unchanged, the
pseudo-labeller calls the top-down car a car, reviewed labels win, a short fine-tune lowers the error on held-out
annotated frames, and the model repository versions, serves and rolls back."""

import json
import shutil

import numpy as np
import pytest

from app.adapt import repository as repo
from app.adapt.finetune import FinetuneConfig
from app.adapt.onnx_torch import OnnxModule, parity
from app.adapt.pseudo_labels import ALL_CLASSES, LabelledFrame, PseudoLabeller, merge_reviewed
from app.adapt.run import AdaptRequest, adapt, match, score_frames, video_frames
from app.inprocess import motion_detector, pretrained_detector
from app.scenarios import CAR_TRAFFIC
from tests.conftest import CAR_VIDEO
from vigil.config import REPO_ROOT
from vigil.detections import box_iou

MODELS = REPO_ROOT / "models"
BASE = MODELS / "yolox_nano" / "1" / "model.onnx"
TRUTH = json.loads((REPO_ROOT / "load" / "ground_truth.json").read_text())["videos"]["car-detection.mp4"]


def held_out_truth(min_s: float) -> list[LabelledFrame]:
    """The hand-annotated car frames from `min_s` on (ignore boxes as ignore regions)."""
    wanted = {int(k): v for k, v in TRUTH["frames"].items() if int(k) / TRUTH["fps"] >= min_s}
    frames = []
    for ts_ms, rgb in video_frames(CAR_VIDEO, TRUTH["fps"]):
        index = round(ts_ms / 1000 * TRUTH["fps"])
        if index in wanted:
            boxes = wanted[index]
            keep = [b for b in boxes if not b.get("ignore")]
            frames.append(LabelledFrame(ts_ms, rgb, np.array([b["xyxy"] for b in keep], np.float32).reshape(-1, 4),
                                        np.full(len(keep), 2, np.int32),
                                        np.array([b["xyxy"] for b in boxes if b.get("ignore")], np.float32).reshape(-1, 4)))
    return frames


def test_onnx_graph_runs_in_torch_and_exports_the_same_graph(tmp_path):
    module = OnnxModule(BASE)
    tensor = (np.random.default_rng(0).random((1, 3, 416, 416)) * 255).astype(np.float32)
    assert parity(module, BASE, tensor) < 1e-3
    exported = module.export(tmp_path / "model.onnx")
    assert parity(module, exported, tensor) < 1e-3
    with pytest.raises(ValueError, match="not supported"):
        import onnx
        from onnx import helper

        graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
        onnx.save(helper.make_model(graph), str(tmp_path / "softmax.onnx"))
        OnnxModule(tmp_path / "softmax.onnx")


def test_pseudo_labels_call_the_top_down_car_a_car():
    labeller = PseudoLabeller(pretrained_detector("yolox_nano", classes=ALL_CLASSES), motion_detector(), CAR_TRAFFIC.lanes)
    for ts_ms, rgb in video_frames(CAR_VIDEO, 5.0, 0.0, 10.0):
        labeller.observe("car-park", ts_ms, rgb)
    labels = {f.capture_ts_ms: f for f in labeller.labels()}
    assert labeller.summary()["tracks_by_class"] == {"2": 1}, labeller.summary()
    for index in (80, 90, 100):  # annotated frames of the one car passing in these 10 s
        truth = np.array([b["xyxy"] for b in TRUTH["frames"][str(index)]], np.float32)
        frame = labels[round(index / TRUTH["fps"] * 1000)]
        assert frame.class_id.tolist() == [2] and box_iou(truth, frame.xyxy).max() >= 0.5, (index, frame.xyxy)
    entering = labels[round(70 / TRUTH["fps"] * 1000)]  # before its track is confirmed: not taught either way
    truth = np.array([b["xyxy"] for b in TRUTH["frames"]["70"]], np.float32)
    assert not len(entering.xyxy) and box_iou(truth, entering.ignore).max() >= 0.5
    assert all(not len(f.xyxy) for ts, f in labels.items() if ts < 3000), "no car before it arrives"


def test_reviewed_labels_replace_pseudo_labels():
    rgb = np.zeros((4, 4, 3), np.uint8)
    pseudo = [LabelledFrame(t, rgb, np.array([[0, 0, 2, 2]], np.float32), np.array([67], np.int32)) for t in (0, 200)]
    reviewed = {200: LabelledFrame(200, rgb, np.array([[1, 1, 3, 3]], np.float32), np.array([2], np.int32), source="review"),
                400: LabelledFrame(400, rgb, np.zeros((0, 4), np.float32), np.zeros(0, np.int32), source="review")}
    merged = merge_reviewed(pseudo, reviewed)
    assert [(f.capture_ts_ms, f.source) for f in merged] == [(0, "pseudo"), (200, "review"), (400, "review")]
    assert merged[1].class_id.tolist() == [2]


def test_match_counts_ignore_and_classes():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert match(gt, [2, 2], gt, [2, 2]) == (2, 0, 0)
    assert match(gt, [2, 0], gt, [2, 2]) == (1, 1, 1), "a wrong class is a miss and a false alarm"
    assert match(gt, [2, 0], gt, [2, 2], class_aware=False) == (2, 0, 0)
    assert match(gt[:1], [2], gt, [2, 2], gt_ignore=[False, True]) == (1, 0, 0), "an ignored box is not missed"


@pytest.mark.slow  # a real fine-tune: about two minutes on 2 cores
def test_a_short_fine_tune_lowers_the_held_out_error(tmp_path):
    repository = tmp_path / "models"
    shutil.copytree(MODELS / "yolox_nano", repository / "yolox_nano", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    request = AdaptRequest("car-park", lanes=CAR_TRAFFIC.lanes,
                           finetune=FinetuneConfig(epochs=8, batch_size=8), refit=False)
    report = adapt(request, video_frames(CAR_VIDEO, 12.5, 0.0, 14.0), repository, progress=lambda *_: None)
    assert report["published"] == {"model": "yolox_nano__car-park", "version": 1}, report
    assert report["validation"]["after"]["f1"] > report["validation"]["before"]["f1"]
    # scored on hand-annotated frames the fine-tune never saw (t >= 15 s), class-aware
    held_out = held_out_truth(15.0)
    before = score_frames(pretrained_detector("yolox_nano", "1", repository), held_out)
    after = score_frames(pretrained_detector("yolox_nano", "1", repository,
                                             onnx_path=repository / "yolox_nano__car-park" / "1" / "model.onnx"), held_out)
    assert after.f1 > before.f1 + 0.3, (before.as_dict(), after.as_dict())
    assert after.recall >= 0.8, after.as_dict()
    meta = repo.metadata(repository, "yolox_nano__car-park", 1)
    assert meta["camera_id"] == "car-park" and meta["train_frames"] > 0 and len(meta["base_sha256"]) == 64


def test_repository_versions_policy_and_errors(tmp_path):
    repository = tmp_path / "models"
    shutil.copytree(MODELS / "yolox_nano", repository / "yolox_nano", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = OnnxModule(BASE)
    assert repo.publish(repository, "yolox_nano", "cam-1", module, {}) == ("yolox_nano__cam-1", 1)
    assert repo.publish(repository, "yolox_nano", "cam-1", module, {}) == ("yolox_nano__cam-1", 2)
    assert repo.adapted_models(repository, ["yolox_nano"]) == ["yolox_nano__cam-1"]
    assert repo.served_version(repository, "yolox_nano__cam-1") == 2
    repo.set_policy(repository, "yolox_nano__cam-1", 1)
    assert repo.served_version(repository, "yolox_nano__cam-1") == 1
    assert "specific" in (repository / "yolox_nano__cam-1" / "config.pbtxt").read_text()
    repo.set_policy(repository, "yolox_nano__cam-1", None)
    assert repo.served_version(repository, "yolox_nano__cam-1") == 2
    with pytest.raises(repo.RepositoryError, match="has no version 7"):
        repo.set_policy(repository, "yolox_nano__cam-1", 7)
    with pytest.raises(repo.RepositoryError, match="no model"):
        repo.set_policy(repository, "yolox_nano__cam-2", 1)
    config = (repository / "yolox_nano__cam-1" / "config.pbtxt").read_text()
    assert 'name: "yolox_nano__cam-1"' in config and sum(line.startswith("version_policy") for line in config.splitlines()) == 1


def test_adapt_command_refuses_bad_periods_clearly(capsys):
    from app.adapt.cli import main

    assert main(["detector-adapt", "--camera", "car-park", "--since", "yesterday", "--until", "now"]) == 2
    assert "is not an ISO 8601 time" in capsys.readouterr().err
    assert main(["detector-adapt", "--camera", "car-park"]) == 2
    assert "give --since and --until" in capsys.readouterr().err
    assert main(["detector-rollback", "--camera", "no-such-camera", "--no-reload"]) == 2
    assert "no adapted model 'yolox_nano__no-such-camera'" in capsys.readouterr().err
