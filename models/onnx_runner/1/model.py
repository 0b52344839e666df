"""Any ONNX file in Triton's python backend with onnxruntime on CPU, under the ONNX's own tensor names.

A STAND-IN, used only on machines whose tritonserver has no native onnxruntime backend (the embedded one from
nvidia-pytriton carries only the python backend). `vigil triton-gpu-repo --device cpu` renders each `<detector>_onnx`
model with this file so that the BLS wiring of a GPU repository (python pre/post-processing → raw network model) can
be run and tested on CPU. On a GPU Triton the same `<detector>_onnx` model is Triton's native `onnxruntime_onnx`
platform with TensorRT; nothing here is used there.

The model's config.pbtxt (written by the renderer from the ONNX) names the inputs and outputs; `model.onnx` sits in
the version folder (a link to the detector's weights). Parameter `threads`: onnxruntime intra-op threads.
"""

import json
import os

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by tests without Triton
    pb_utils = None


def load_session(path, threads):
    """onnxruntime CPU session; initializers listed as graph inputs are dropped first (constant folding applies)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.name = config["name"]
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.name}: {path} is missing (render the repository again)")
        self.session = load_session(path, int(params.get("threads", "1")))
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        have = [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        if have != (self.inputs, self.outputs):
            raise ValueError(f"{self.name}: config tensors {self.inputs} → {self.outputs} differ from the ONNX's "
                             f"{have[0]} → {have[1]}")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feed = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
                results = self.session.run(self.outputs, feed)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(n, r) for n, r in zip(self.outputs, results)]))
            except Exception as exc:  # noqa: BLE001 - report per request, keep serving
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {exc}")))
        return responses
