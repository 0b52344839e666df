"""Triton python backend: crops → learned embeddings from the TorchScript model trained by services/reid/train.py."""
import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        device = params.get("device", "auto")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        torch.set_num_threads(int(params.get("threads", "1")))
        path = Path(args["model_repository"]) / args["model_version"] / "model.pt"
        if not path.exists():
            raise pb_utils.TritonModelException(
                f"reid_learned: {path} is missing; train one with `vigil reid-train` (see README, Re-identification)")
        self.model = torch.jit.load(str(path), map_location=self.device).eval()

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                crops = pb_utils.get_input_tensor_by_name(request, "CROPS").as_numpy()
                with torch.inference_mode():
                    x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float()
                    embedding = self.model(x).float().cpu().numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", embedding)]))
            except Exception as exc:  # noqa: BLE001
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"reid_learned: {exc}")))
        return responses
