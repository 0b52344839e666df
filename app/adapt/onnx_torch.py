"""Run an ONNX detector graph in torch, train its weights, and write them back into the same ONNX graph.

The pretrained detectors are small convolutional graphs of a dozen operator types (Conv, Sigmoid, Mul, Add, Concat,
Slice, MaxPool, Resize, Reshape, Transpose, LeakyRelu, Split). This module interprets such a graph node by node
with torch functions, every float initializer that a Conv uses becoming a trainable `nn.Parameter` under its ONNX
name. After fine-tuning, `export` copies the original graph and replaces those initializers, so the exported model
is the very graph that was validated, with new weights, and runs in onnxruntime (Triton's python backend) or in
Triton's native onnxruntime/TensorRT backends unchanged. (onnx2torch needs torchvision's compiled ops, which do not
load against this project's torch build; the graph is simple enough to interpret directly.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(torch.nn.Module):
    SUPPORTED = frozenset({"Conv", "Sigmoid", "Mul", "Add", "Concat", "Slice", "MaxPool", "Resize", "Reshape", "Transpose",
                           "LeakyRelu", "Split", "Constant"})

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        model = onnx.load(str(path))
        unsupported = {n.op_type for n in model.graph.node} - self.SUPPORTED
        if unsupported:
            raise ValueError(f"{path}: operators {sorted(unsupported)} are not supported by the torch interpreter")
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attributes(n)) for n in model.graph.node]
        conv_weights = {name for op, inputs, _, _ in self.nodes if op == "Conv" for name in inputs[1:]}
        self.params = torch.nn.ParameterDict()
        self.constants: dict[str, torch.Tensor] = {}
        self.names: dict[str, str] = {}  # ParameterDict key → ONNX initializer name
        for init in model.graph.initializer:
            array = numpy_helper.to_array(init)
            if init.name in conv_weights:
                key = f"p{len(self.names)}"
                self.names[key] = init.name
                self.params[key] = torch.nn.Parameter(torch.from_numpy(array.copy()))
            else:
                self.constants[init.name] = torch.from_numpy(array.copy())
        self.keys = {onnx_name: key for key, onnx_name in self.names.items()}
        initializers = {init.name for init in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in initializers]
        self.output_names = [o.name for o in model.graph.output]

    def _value(self, values: dict, name: str):
        if name in values:
            return values[name]
        if name in self.keys:
            return self.params[self.keys[name]]
        return self.constants[name]

    def forward(self, *inputs: torch.Tensor):
        values: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs))
        for op, names, outputs, attrs in self.nodes:
            args = [self._value(values, n) if n else None for n in names]
            result = getattr(self, f"_{op.lower()}")(args, attrs)
            for name, value in zip(outputs, result if isinstance(result, (list, tuple)) else [result]):
                values[name] = value
        results = [values[n] for n in self.output_names]
        return results[0] if len(results) == 1 else results

    # --- operators --------------------------------------------------------------------------------------------
    @staticmethod
    def _conv(args, attrs):
        x, weight, bias = (args + [None])[:3]
        pads = attrs.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            x, pads = F.pad(x, (pads[1], pads[3], pads[0], pads[2])), [0, 0]
        return F.conv2d(x, weight, bias, stride=attrs.get("strides", 1), padding=tuple(pads[:2]),
                        dilation=attrs.get("dilations", 1), groups=attrs.get("group", 1))

    @staticmethod
    def _sigmoid(args, attrs):
        return torch.sigmoid(args[0])

    @staticmethod
    def _mul(args, attrs):
        return args[0] * args[1]

    @staticmethod
    def _add(args, attrs):
        return args[0] + args[1]

    @staticmethod
    def _concat(args, attrs):
        return torch.cat(args, dim=attrs["axis"])

    @staticmethod
    def _leakyrelu(args, attrs):
        return F.leaky_relu(args[0], attrs.get("alpha", 0.01))

    @staticmethod
    def _constant(args, attrs):
        return torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())

    @staticmethod
    def _maxpool(args, attrs):
        pads = attrs.get("pads", [0, 0, 0, 0])
        return F.max_pool2d(args[0], attrs["kernel_shape"], stride=attrs.get("strides", 1), padding=tuple(pads[:2]),
                            ceil_mode=bool(attrs.get("ceil_mode", 0)))

    @staticmethod
    def _resize(args, attrs):
        mode = attrs.get("mode", b"nearest").decode() if isinstance(attrs.get("mode"), bytes) else attrs.get("mode", "nearest")
        transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
        transform = transform.decode() if isinstance(transform, bytes) else transform
        if mode == "nearest":
            options = {"mode": "nearest"}
        elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            options = {"mode": "bilinear", "align_corners": transform == "align_corners"}
        else:
            raise ValueError(f"Resize mode {mode}/{transform} is not supported")
        x, scales = args[0], args[2] if len(args) > 2 else None
        sizes = args[3] if len(args) > 3 else None
        if sizes is not None and sizes.numel():
            return F.interpolate(x, size=[int(s) for s in sizes[2:]], **options)
        return F.interpolate(x, scale_factor=[float(s) for s in scales[2:]], **options)

    @staticmethod
    def _slice(args, attrs):
        x, starts, ends = args[:3]
        axes = args[3] if len(args) > 3 and args[3] is not None else torch.arange(len(starts))
        steps = args[4] if len(args) > 4 and args[4] is not None else torch.ones(len(starts), dtype=torch.int64)
        index = [slice(None)] * x.dim()
        for start, end, axis, step in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
            size = x.shape[axis]
            index[axis] = slice(max(min(start, size), -size), max(min(end, size), -size - 1), step)
        return x[tuple(index)]

    @staticmethod
    def _reshape(args, attrs):
        x, shape = args[0], [int(s) for s in args[1].tolist()]
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        if shape and shape[0] == 1 and x.shape[0] != 1:  # exported at batch 1: keep the batch dimension
            shape[0] = x.shape[0]
        return x.reshape(shape)

    @staticmethod
    def _transpose(args, attrs):
        return args[0].permute(*attrs["perm"])

    @staticmethod
    def _split(args, attrs):
        x, axis = args[0], attrs.get("axis", 0)
        sizes = attrs.get("split") or (args[1].tolist() if len(args) > 1 and args[1] is not None else None)
        if sizes is None:
            return torch.chunk(x, len(attrs.get("outputs", [])) or 2, dim=axis)
        return torch.split(x, [int(s) for s in sizes], dim=axis)

    # --- export -----------------------------------------------------------------------------------------------
    def export(self, target: str | Path) -> Path:
        """The original graph with this module's current weights, written to `target`."""
        model = onnx.load(str(self.path))
        for init in model.graph.initializer:
            key = self.keys.get(init.name)
            if key is not None:
                array = self.params[key].detach().cpu().numpy().astype(numpy_helper.to_array(init).dtype)
                init.CopyFrom(numpy_helper.from_array(array, init.name))
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(target))
        return target


def parity(module: OnnxModule, onnx_path: str | Path, tensor: np.ndarray) -> float:
    """Largest absolute difference between the torch module and onnxruntime on one input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # NanoDet's export lists its initializers as inputs: a warning per tensor
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: tensor})
    with torch.no_grad():
        got = module(torch.from_numpy(tensor))
    got = got if isinstance(got, (list, tuple)) else [got]
    return max(float(np.abs(g.numpy() - e).max()) for g, e in zip(got, expected))
