"""The re-ID embedders served by the real tritonserver, called over gRPC with batches of real person crops: unit
vectors, batch-independent, the same person closer than two different people (across a colour-shifted view for the
trained embedders), the trainer's loss falls on real tracks (the pretrained backbone staying frozen), and a trained
embedder without its model.pt fails to load with a message that says how to build it."""

import shutil

import av
import cv2
import numpy as np
import pytest
import torch

from app.reid_scenario import VIEWS
from app.stack import manager
from services.reid.embedder import TritonEmbedder
from services.reid.train import train_embedder
from tests.conftest import PERSON_VIDEO, make_settings
from vigil.config import REPO_ROOT
from vigil.reid_embedding import COLOUR_DIM, crop_boxes

# Source frames of the person video: two moments of visit p2 and one of p3 (one person in view each time).
FRAMES = {"p2a": 300, "p2b": 420, "p3": 600, "empty": 470}


@pytest.fixture(scope="module")
def people():
    wanted, images = set(FRAMES.values()), {}
    with av.open(str(PERSON_VIDEO)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                images[i] = frame.to_ndarray(format="rgb24")
            if i > max(wanted):
                break
    empty = images[FRAMES["empty"]]
    crops = {}
    for name, index in FRAMES.items():
        if name == "empty":
            continue
        mask = (np.abs(images[index].astype(np.int16) - empty.astype(np.int16)).max(2) > 40).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        x, y, w, h = cv2.boundingRect(max(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea))
        assert h > 150, f"a person is in view at source frame {index}"
        crops[name] = crop_boxes(images[index], np.array([[x, y, x + w, y + h]]))[0]
        east = VIEWS[1].render(images[index])  # the same moment through the warmer, blurred hall-east camera
        crops[name + "-east"] = crop_boxes(east, np.array([[x - VIEWS[1].x0, y, x + w - VIEWS[1].x0, y + h]]))[0]
    return crops


@pytest.mark.parametrize("model", ["reid_color", "reid_learned", "reid_pretrained"])
def test_embedder_over_grpc(stack, people, model):
    embedder = TritonEmbedder(stack.triton_url, model)
    names = list(people)
    batch = np.stack([people[n] for n in names])
    vectors = embedder.embed(batch)
    assert vectors.shape == (len(names), COLOUR_DIM if model == "reid_color" else 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    alone = embedder.embed(batch[:1])
    assert np.allclose(alone[0], vectors[0], atol=1e-4), "an embedding does not depend on the rest of its batch"
    v = dict(zip(names, vectors))
    assert v["p2a"] @ v["p2b"] > v["p2a"] @ v["p3"], "the same person at two moments is closer than another person"
    if model != "reid_color":
        assert v["p2a"] @ v["p2b-east"] > v["p2a"] @ v["p3-east"], "and through another camera's colours"
    assert embedder.name == f"{model}:1"


def _jittered_tracks(people, names_by_camera: dict[str, list[str]]) -> dict:
    """'Tracks' of jittered copies of one crop each (the trainer augments further)."""
    rng = np.random.default_rng(0)
    tracks = {}
    for camera, names in names_by_camera.items():
        for t, name in enumerate(names):
            base = people[name].astype(np.int16)
            tracks[(camera, t)] = np.stack([np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)
                                            for _ in range(6)])
    return tracks


def test_trainer_learns_from_tracks(people):
    tracks = _jittered_tracks(people, {camera: ["p2a", "p3", "p2b"] for camera in ("cam-a", "cam-b")})
    model, history = train_embedder(tracks, steps=60, tracks_per_batch=3, log_every=0)
    assert np.mean(history[-20:]) < 0.7 * np.mean(history[:20]), "InfoNCE loss falls"
    with pytest.raises(ValueError, match="two or more tracks"):
        train_embedder({("cam-a", 1): tracks[("cam-a", 0)]}, steps=1)
    with pytest.raises(ValueError, match="unknown embedder 'reid_colour'"):
        train_embedder(tracks, steps=1, embedder="reid_colour")


def test_pretrained_trainer_keeps_the_imagenet_backbone(people):
    from vigil.reid_embedding import mobilenetv2_imagenet

    imagenet = mobilenetv2_imagenet().features.state_dict()
    # two different people per camera (ImageNet features alone already find p2a and p2b alike)
    tracks = _jittered_tracks(people, {"cam-a": ["p2a", "p3"], "cam-b": ["p2b-east", "p3-east"]})
    model, history = train_embedder(tracks, steps=60, tracks_per_batch=2, log_every=0, embedder="reid_pretrained")
    assert np.mean(history[-20:]) < 0.7 * np.mean(history[:20]), "InfoNCE loss falls"
    trained = model.features.state_dict()
    changed = [name for name, value in imagenet.items() if not torch.equal(value, trained[name])]
    assert not changed, "the ImageNet weights and batch-norm statistics stay as shipped; only the head learns"


@pytest.mark.slow  # starts its own tritonserver
def test_trained_embedder_without_its_model_says_how_to_build_it(tmp_path):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    repository = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models" / "reid_pretrained", repository / "reid_pretrained",
                    ignore=shutil.ignore_patterns("__pycache__", "model.pt", "metadata.json"))
    settings = make_settings(tmp_path / "data", model_repository=repository, triton_models=[])
    manager.up(settings, only=["triton"], log=lambda *_: None)
    try:
        client = grpcclient.InferenceServerClient(settings.triton_url)
        with pytest.raises(InferenceServerException, match=r"reid_pretrained: .*model\.pt is missing; `make setup` "
                           r"builds it, or train one with `vigil reid-train --embedder reid_pretrained`"):
            client.load_model("reid_pretrained")
        assert not client.is_model_ready("reid_pretrained")
    finally:
        manager.down(settings)


def test_embed_service_says_clearly_when_the_embedder_is_not_served(stack):
    from services.reid.service import ReidEmbedService, ReidEmbedSettings, main
    from vigil.runtime import StartupError

    with pytest.raises(StartupError, match="not served by Triton.*VIGIL_TRITON_MODELS"):
        ReidEmbedService(ReidEmbedSettings(**{**stack.model_dump(), "reid_model": "no_such_embedder"}))
    env = {f"VIGIL_{k.upper()}": str(v) for k, v in
           {"data_dir": stack.data_dir, "kafka_bootstrap": stack.kafka_bootstrap, "triton_url": stack.triton_url,
            "reid_model": "no_such_embedder"}.items()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main([]) == 2, "the command exits with status 2 (start-up error), not a traceback"
