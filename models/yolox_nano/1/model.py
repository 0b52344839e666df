"""Pretrained COCO detectors (YOLOX-Nano, NanoDet-m) in Triton's python backend: letterbox, onnxruntime, decode, NMS.

One file for both families (`models/nanodet_m/1/model.py` is a link to this one); the `family` parameter of the
model's config.pbtxt picks the pre- and post-processing, which differ (../shared/models/detectors/SOURCES.md):
- yolox: BGR raw 0..255, top-left letterbox padded with 114 (INTER_LINEAR); output [1, 3549, 85] = grid offsets,
  log sizes, objectness and class scores (sigmoided) at strides 8/16/32.
- nanodet: BGR (x - mean) / std, centred letterbox padded with 0 (INTER_AREA); per stride a class map [1, HW, 80]
  and a distance distribution [1, HW, 32] (l, t, r, b x 8 bins), centre points at (x + 0.5) * stride.
Only the classes Vigil tracks are kept (COCO ids: person 0, bicycle 1, car 2, motorcycle 3, bus 5, truck 7), and
NMS runs class-wise. Output is Vigil's detector contract (BOXES/SCORES/CLASSES/COUNT, padded per batch), boxes in
pixels of the frame as sent. Stateless: any number of instances. A version folder holds `model.onnx` (set-up links
the pretrained file from ../shared after checking its sha256; `vigil detector-adapt` writes fine-tuned ones).

With the config parameter `raw_model` (a GPU Triton repository rendered by `vigil triton-gpu-repo`), the network
itself is not run here: the letterboxed tensor goes to that Triton model (the same ONNX in Triton's native
onnxruntime backend, TensorRT on the GPU) with a BLS call, and only the pre- and post-processing run in this
python-backend instance (on CPU). No onnxruntime session is created then; the tensor names are read from the ONNX.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported in-process by evaluation, adaptation and tests
    pb_utils = None

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
VEHICLE_AND_PERSON = (0, 1, 2, 3, 5, 7)
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)


def yolox_grid(size=INPUT_SIZE):
    """(3549, 2) grid cell offsets and (3549,) strides, in the model's output order (stride 8 first, y then x)."""
    cells, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full(n * n, stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def letterbox(rgb, family, size=INPUT_SIZE):
    """RGB frame → (1, 3, size, size) float32 input tensor, scale r and the (pad_x, pad_y) of the pasted image."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(w * r), int(h * r)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if family == "yolox":
        canvas = np.full((size, size, 3), 114, np.uint8)
        canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        image, pad = canvas.astype(np.float32), (0, 0)
    elif family == "nanodet":
        canvas = np.zeros((size, size, 3), np.float32)
        pad = ((size - nw) // 2, (size - nh) // 2)
        resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)
        canvas[pad[1]:pad[1] + nh, pad[0]:pad[0] + nw] = (resized - NANODET_MEAN) / NANODET_STD
        image = canvas
    else:
        raise ValueError(f"unknown detector family {family!r}: use yolox or nanodet")
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None]), r, pad


def yolox_candidates(output, grid=None):
    """One image's raw YOLOX output (3549, 85) → (xyxy in input pixels, class score matrix objectness x class)."""
    cells, strides = grid if grid is not None else yolox_grid()
    xy = (output[:, :2] + cells) * strides[:, None]
    wh = np.exp(np.minimum(output[:, 2:4], 10.0)) * strides[:, None]
    xyxy = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    return xyxy, output[:, 4:5] * output[:, 5:]


def nanodet_candidates(outputs):
    """NanoDet's six outputs (cls and reg per stride, in any order) → (xyxy in input pixels, class scores)."""
    boxes, scores = [], []
    cls_maps = sorted([o for o in outputs if o.shape[-1] == 80], key=lambda o: -o.shape[1])
    reg_maps = sorted([o for o in outputs if o.shape[-1] == 32], key=lambda o: -o.shape[1])
    for stride, cls, reg in zip(STRIDES, cls_maps, reg_maps):
        n = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) + 0.5) * stride
        bins = reg[0].reshape(-1, 4, 8)
        bins = np.exp(bins - bins.max(-1, keepdims=True))
        distances = (bins / bins.sum(-1, keepdims=True)) @ np.arange(8, dtype=np.float32) * stride
        boxes.append(np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], 1))
        scores.append(cls[0])
    return np.concatenate(boxes), np.concatenate(scores)


def select(xyxy, class_scores, conf_threshold, iou_threshold, keep_classes, max_det):
    """Best class per candidate, threshold, keep Vigil's classes, class-wise NMS → (xyxy, scores, classes)."""
    classes = class_scores.argmax(1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = (scores >= conf_threshold) & np.isin(classes, keep_classes)
    xyxy, scores, classes = xyxy[keep], scores[keep], classes[keep]
    if not len(xyxy):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1).tolist()
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(float).tolist(), classes.tolist(), conf_threshold, iou_threshold)
    kept = np.asarray(kept, dtype=int).reshape(-1)[:max_det]
    return xyxy[kept].astype(np.float32), scores[kept].astype(np.float32), classes[kept].astype(np.int32)


def load_session(path, threads):
    """onnxruntime session; initializers listed as graph inputs (NanoDet's export) are dropped first so constant
    folding applies (same outputs, ~20 % faster)."""
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


def onnx_tensor_names(path):
    """(input name, output names) of an ONNX file: its graph inputs that are not initializers (NanoDet's export lists
    its weights as inputs too), and its graph outputs in order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one image input, found {inputs}")
    return inputs[0], [o.name for o in graph.output]


class PretrainedDetector:
    DEFAULTS = {"family": "yolox", "conf_threshold": 0.3, "iou_threshold": 0.45, "max_det": 100,  # noqa: RUF012
                "threads": 1, "classes": "0,1,2,3,5,7", "raw_model": "", "parallel_frames": 1}

    def __init__(self, path, **params):
        p = {**self.DEFAULTS, **params}
        self.family = p["family"]
        self.conf, self.iou, self.max_det = float(p["conf_threshold"]), float(p["iou_threshold"]), int(p["max_det"])
        self.keep_classes = np.array([int(c) for c in str(p["classes"]).split(",") if c.strip()], np.int64)
        self.raw_model = str(p["raw_model"] or "")
        if self.raw_model:  # the network runs in another Triton model (BLS); no onnxruntime session here
            if pb_utils is None:
                raise RuntimeError(f"raw_model={self.raw_model!r} sends the tensor to another Triton model, which only "
                                   "works inside Triton's python backend; in-process use needs no raw_model")
            self.session = None
            self.input_name, self.output_names = onnx_tensor_names(path)
        else:
            self.session = load_session(path, int(p["threads"]))
            self.input_name = self.session.get_inputs()[0].name
        self.grid = yolox_grid()
        # frames of one request detected side by side (one onnxruntime session is safe to run from several threads,
        # and each run releases the GIL): 2 = a batch uses both cores of a 2-core box without intra-op threads
        self.parallel = max(1, int(p["parallel_frames"]))
        self._pool = None

    def raw(self, tensor):
        if self.raw_model:
            return self.raw_bls(tensor)
        return self.session.run(None, {self.input_name: tensor})

    def raw_bls(self, tensor):
        """The raw outputs from the Triton model `raw_model` (BLS), in the ONNX's output order, on CPU."""
        response = pb_utils.InferenceRequest(
            model_name=self.raw_model, inputs=[pb_utils.Tensor(self.input_name, tensor)],
            requested_output_names=list(self.output_names),
            preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)).exec()
        if response.has_error():
            raise RuntimeError(f"{self.raw_model}: {response.error().message()}")
        return [pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in self.output_names]

    def candidates(self, rgb):
        """All candidates of one frame in frame pixels (before threshold and NMS): (xyxy, class scores)."""
        tensor, r, (pad_x, pad_y) = letterbox(rgb, self.family)
        outputs = self.raw(tensor)
        if self.family == "yolox":
            xyxy, scores = yolox_candidates(outputs[0][0], self.grid)
        else:
            xyxy, scores = nanodet_candidates(outputs)
        xyxy = (xyxy - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / r
        h, w = rgb.shape[:2]
        return np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32), scores

    def detect(self, frames_rgb, min_score=None):
        """(xyxy, scores, classes) per frame at score >= conf_threshold, or >= `min_score` where given: a tracker asks
        for weaker boxes (ByteTrack's second stage). NMS only lets a box suppress weaker ones, so the boxes at or above
        conf_threshold are the same either way."""
        threshold = self.conf if min_score is None else float(min_score)

        def one(rgb):
            xyxy, scores = self.candidates(rgb)
            return select(xyxy, scores, threshold, self.iou, self.keep_classes, self.max_det)

        if self.parallel > 1 and len(frames_rgb) > 1 and self.session is not None:  # BLS calls stay sequential
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="detect")
            return list(self._pool.map(one, frames_rgb))  # in order
        return [one(rgb) for rgb in frames_rgb]

    def process(self, camera_id, rgb, min_score=None):
        """The in-process call shape shared with the motion detector: (boxes, scores, classes) of one frame."""
        return self.detect([rgb], min_score)[0]


def request_min_score(request):
    """The request parameter `min_score` (a client's tracker asking for weaker boxes), or None."""
    value = json.loads(request.parameters() or "{}").get("min_score")
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_score must be within [0, 1], got {value}")
    return value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{config['name']}: {path} is missing; run `make setup` (it links the pretrained "
                                    "ONNX from ../shared/models/detectors after checking its sha256)")
        self.name = config["name"]
        self.model = PretrainedDetector(path, **{k: v for k, v in params.items() if k in PretrainedDetector.DEFAULTS})

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                frames = pb_utils.get_input_tensor_by_name(request, "FRAMES").as_numpy()
                results = self.model.detect(list(frames), request_min_score(request))
                n = max([len(r[0]) for r in results] + [1])
                boxes = np.zeros((len(results), n, 4), np.float32)
                scores = np.zeros((len(results), n), np.float32)
                classes = np.full((len(results), n), -1, np.int32)
                count = np.zeros((len(results), 1), np.int32)
                for b, (xyxy, sc, cl) in enumerate(results):
                    k = len(xyxy)
                    boxes[b, :k], scores[b, :k], classes[b, :k], count[b, 0] = xyxy, sc, cl, k
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("BOXES", boxes), pb_utils.Tensor("SCORES", scores),
                    pb_utils.Tensor("CLASSES", classes), pb_utils.Tensor("COUNT", count)]))
            except Exception as exc:  # noqa: BLE001 - report per request, keep serving
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {exc}")))
        return responses
