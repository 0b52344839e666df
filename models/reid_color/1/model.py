"""Triton python backend: crops → stripe-wise colour-histogram embeddings (services/reid/embedding.py)."""
import cv2
import triton_python_backend_utils as pb_utils

from vigil.reid_embedding import colour_embedding


class TritonPythonModel:
    def initialize(self, args):
        cv2.setNumThreads(1)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                crops = pb_utils.get_input_tensor_by_name(request, "CROPS").as_numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", colour_embedding(crops))]))
            except Exception as exc:  # noqa: BLE001
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"reid_color: {exc}")))
        return responses
