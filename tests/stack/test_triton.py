"""The default detector loaded into the real tritonserver and called over gRPC with batches of real frames."""

import av
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import CAR_VIDEO

pytestmark = pytest.mark.slow  # starts real servers or Flink


def _frames(path, count):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= count:
                return
            yield frame.to_ndarray(format="rgb24")


def test_motion_detector_batches_over_grpc(stack):
    client = grpcclient.InferenceServerClient(stack.triton_url)
    assert client.is_model_ready("motion_detector")
    frames = list(_frames(CAR_VIDEO, 96))
    per_frame = []
    for start in range(0, len(frames), 8):
        batch = np.stack(frames[start:start + 8])
        inputs = [grpcclient.InferInput("FRAMES", list(batch.shape), "UINT8"),
                  grpcclient.InferInput("CAMERA_ID", [len(batch), 1], "BYTES")]
        inputs[0].set_data_from_numpy(batch)
        inputs[1].set_data_from_numpy(np.array([[b"triton-test"]] * len(batch), dtype=object))
        result = client.infer("motion_detector", inputs)
        boxes, classes, count = result.as_numpy("BOXES"), result.as_numpy("CLASSES"), result.as_numpy("COUNT")
        assert boxes.shape[0] == classes.shape[0] == count.shape[0] == len(batch)
        per_frame += [(boxes[b, : count[b, 0]], classes[b, : count[b, 0]]) for b in range(len(batch))]
    assert all(len(b) == 0 for b, _ in per_frame[:40]), "no output during background warm-up"
    with_cars = [(b, c) for b, c in per_frame[55:96] if len(b)]
    assert len(with_cars) >= 20, "the first car passes through frames ~55-111 of the car video"
    for boxes, classes in with_cars:
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert (boxes >= 0).all() and (boxes[:, 2] <= 768).all() and (boxes[:, 3] <= 432).all()
    labels = np.concatenate([c for _, c in with_cars])
    assert (labels == 2).mean() > 0.9, "moving objects on the car camera are labelled car"
