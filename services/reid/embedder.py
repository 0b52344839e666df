"""The Triton adapter of the re-ID embedders: crops [N, 128, 64, 3] uint8 in, L2-normalised embeddings out, over gRPC.
Every embedder model (reid_learned, reid_pretrained, reid_color) speaks this one tensor contract: CROPS → EMBEDDING."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient


class TritonEmbedder:
    """Crops [N, 128, 64, 3] uint8 → embeddings [N, D] over gRPC (reid_color, reid_learned or reid_pretrained)."""

    def __init__(self, url: str, model_name: str, max_batch: int = 64, timeout_s: float = 30.0):
        self.client = grpcclient.InferenceServerClient(url)
        self.model_name, self.timeout_s = model_name, timeout_s
        metadata = self.client.get_model_metadata(model_name, client_timeout=timeout_s)
        self.model_version = max(metadata.versions, key=int) if metadata.versions else "1"
        config = self.client.get_model_config(model_name, client_timeout=timeout_s).config
        self.max_batch = min(max_batch, config.max_batch_size or max_batch)

    @property
    def name(self) -> str:
        return f"{self.model_name}:{self.model_version}"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(crops), self.max_batch):
            batch = np.ascontiguousarray(crops[start:start + self.max_batch])
            tensor = grpcclient.InferInput("CROPS", list(batch.shape), "UINT8")
            tensor.set_data_from_numpy(batch)
            response = self.client.infer(self.model_name, [tensor], client_timeout=self.timeout_s)
            parts.append(response.as_numpy("EMBEDDING"))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        self.client.close()
