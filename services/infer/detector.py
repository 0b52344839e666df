"""The Triton adapter: batches of frames in, one `Detections` per frame out, over gRPC.

Every Vigil detector model speaks the same tensor contract, so the service does not care which one is configured:
inputs FRAMES uint8 [B, H, W, 3] (RGB) and CAMERA_ID bytes [B, 1]; outputs BOXES [B, N, 4] xyxy pixels, SCORES [B, N],
CLASSES [B, N] (COCO ids) and COUNT [B, 1], padded to the batch's largest N.

One adapter serves several models (a camera's own fine-tune beside the default): `detect` takes the model's name,
and the version Triton answered with is kept per model (`served_version`), so a model switched to a new version
while infer runs is reported correctly on every record."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient

from vigil.detections import Detections


class TritonDetector:
    def __init__(self, url: str, model_name: str, max_batch: int = 8, timeout_s: float = 30.0):
        self.client = grpcclient.InferenceServerClient(url)
        self.model_name = model_name
        self.timeout_s = timeout_s
        metadata = self.client.get_model_metadata(model_name, client_timeout=timeout_s)
        self.model_version = max(metadata.versions, key=int) if metadata.versions else "1"
        self.served: dict[str, str] = {model_name: self.model_version}
        config = self.client.get_model_config(model_name, client_timeout=timeout_s).config
        self.max_batch = min(max_batch, config.max_batch_size or max_batch)

    def is_served(self, model_name: str) -> bool:
        """Whether Triton has this model loaded and ready (unknown models are simply not served)."""
        try:
            return bool(self.client.is_model_ready(model_name, client_timeout=self.timeout_s))
        except Exception:  # noqa: BLE001 - tritonclient raises its own error for unknown models
            return False

    def served_version(self, model_name: str | None = None) -> str:
        return self.served.get(model_name or self.model_name, self.model_version)

    def detect(self, frames_rgb: list[np.ndarray], camera_ids: list[str], model_name: str | None = None,
               min_score: float | None = None) -> list[Detections]:
        """Frames of one size; any count (split into batches of at most max_batch, order kept). `min_score` asks the
        model for boxes down to that score (the request parameter `min_score`; the tracker's second stage wants them)
        instead of its configured threshold; models without such a threshold ignore it."""
        # sent as a string: every server version passes string parameters on to the python backend
        parameters = None if min_score is None else {"min_score": str(float(min_score))}
        model_name = model_name or self.model_name
        results: list[Detections] = []
        for start in range(0, len(frames_rgb), self.max_batch):
            batch = np.ascontiguousarray(np.stack(frames_rgb[start:start + self.max_batch]))
            cams = np.array([[c.encode()] for c in camera_ids[start:start + self.max_batch]], dtype=object)
            inputs = [grpcclient.InferInput("FRAMES", list(batch.shape), "UINT8"),
                      grpcclient.InferInput("CAMERA_ID", list(cams.shape), "BYTES")]
            inputs[0].set_data_from_numpy(batch)
            inputs[1].set_data_from_numpy(cams)
            response = self.client.infer(model_name, inputs, client_timeout=self.timeout_s, parameters=parameters)
            self.served[model_name] = response.get_response().model_version or self.served.get(model_name, "1")
            boxes, scores = response.as_numpy("BOXES"), response.as_numpy("SCORES")
            classes, count = response.as_numpy("CLASSES"), response.as_numpy("COUNT")
            results += [Detections.from_padded(boxes[b], scores[b], classes[b], int(count[b, 0])) for b in range(len(batch))]
        return results

    def close(self) -> None:
        self.client.close()
