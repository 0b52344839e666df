"""Triton python backend: crops → embeddings from a TorchScript model trained by services/reid/train.py.

One file for every trained embedder (`models/reid_pretrained/1/model.py` is a link to this one): the model's name in
its config.pbtxt is also the trainer's `--embedder` that builds its model.pt."""
import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.name = args["model_name"]
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        device = params.get("device", "auto")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        torch.set_num_threads(int(params.get("threads", "1")))
        path = Path(args["model_repository"]) / args["model_version"] / "model.pt"
        if not path.exists():
            raise pb_utils.TritonModelException(
                f"{self.name}: {path} is missing; `make setup` builds it, or train one with "
                f"`vigil reid-train --embedder {self.name}` (see README, Re-identification)")
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
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {exc}")))
        return responses
