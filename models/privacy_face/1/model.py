"""Privacy detectors in Triton's python backend: faces (YuNet) and licence plates (LPD-YuNet), onnxruntime on CPU.

One file for both (`models/privacy_plate/1/model.py` is a link to this one); the `family` parameter of the model's
config.pbtxt picks the decoding, as ../shared/models/privacy/SOURCES.md describes it:
- yunet_face: BGR 0..255, NCHW, padded to a multiple of 32; per stride 8/16/32 cls, obj, bbox (and kps, unused):
  score = sqrt(cls * obj), centre = (cell + bbox[:2]) * stride, size = exp(bbox[2:]) * stride. The same decoding
  as OpenCV's FaceDetectorYN (tests/ingest/test_privacy.py checks the boxes against it).
- lpd_yunet: BGR 0..255, NCHW; SSD-style priors (min sizes [[10,16,24],[32,48],[64,96],[128,192,256]], steps
  8/16/32/64, variance 0.1); score = sqrt(conf[:, 1] * clip(iou, 0, 1)); four corners from loc[:, 4:8] and
  loc[:, 10:14], whose bounding box is the plate.
The ONNX files fix their input size (640x640, 240x320); the spatial dimensions are made dynamic at load time, so a
frame runs at its own size times `scale` (padded to a multiple of 32) instead of being squeezed into that square:
small faces and plates survive. LPD-YuNet finds the small plates of a wide view only when they are enlarged about 4x,
so ingest sends it crops round the vehicles' ends (vigil/privacy.py), not whole frames, and `scale` enlarges them.
Boxes wider or taller than `max_box_fraction` of the image are dropped (LPD-YuNet answers a whole car end with a
low-scoring box that is no plate).

Output is Vigil's detector contract (BOXES/SCORES/CLASSES/COUNT, padded per batch; CLASSES 0 = the one class), boxes
in pixels of the image as sent. Stateless. A version folder holds `model.onnx`: set-up links the file from
../shared/models/privacy after checking privacy.sha256.
"""

import json
import os
from itertools import product

import cv2
import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported in-process by the evaluation and tests
    pb_utils = None

FACE_STRIDES = (8, 16, 32)
LPD_MIN_SIZES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
LPD_STEPS = (8, 16, 32, 64)
LPD_VARIANCE = 0.1


def dynamic_session(path, threads):
    """onnxruntime session of `path` with the input's height and width (and every output shape) left free."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    for index, dim in enumerate(model.graph.input[0].type.tensor_type.shape.dim[2:]):
        dim.ClearField("dim_value")
        dim.dim_param = f"spatial_{index}"
    del model.graph.value_info[:]  # intermediate shapes were inferred for the fixed size
    for output in model.graph.output:
        for index, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.ClearField("dim_value")
            dim.dim_param = f"{output.name}_{index}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def lpd_priors(width, height):
    """LPD-YuNet's prior boxes (cx, cy, w, h, normalised) for an input of width x height, in its output order."""
    fmap = [int(int((height + 1) / 2) / 2), int(int((width + 1) / 2) / 2)]
    priors = []
    for k, min_sizes in enumerate(LPD_MIN_SIZES):
        fmap = [int(fmap[0] / 2), int(fmap[1] / 2)]
        for i, j in product(range(fmap[0]), range(fmap[1])):
            for size in min_sizes:
                priors.append([(j + 0.5) * LPD_STEPS[k] / width, (i + 0.5) * LPD_STEPS[k] / height,
                               size / width, size / height])
    return np.array(priors, np.float32)


def face_candidates(outputs, names, width):
    """YuNet's 12 outputs → (xyxy in input pixels, scores), every cell of every stride."""
    by_name = dict(zip(names, outputs))
    boxes, scores = [], []
    for stride in FACE_STRIDES:
        cls = by_name[f"cls_{stride}"][0, :, 0]
        obj = by_name[f"obj_{stride}"][0, :, 0]
        bbox = by_name[f"bbox_{stride}"][0]
        cells = np.arange(len(cls))
        cols = width // stride
        cx = (cells % cols + bbox[:, 0]) * stride
        cy = (cells // cols + bbox[:, 1]) * stride
        w, h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))
        scores.append(np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1)))
    return np.concatenate(boxes), np.concatenate(scores)


def plate_candidates(outputs, priors, width, height):
    """LPD-YuNet's loc/conf/iou → (xyxy bounding the four corners, in input pixels, scores)."""
    loc, conf, iou = outputs
    if len(loc) != len(priors):
        raise ValueError(f"LPD-YuNet gave {len(loc)} rows for a {width}x{height} input, the priors {len(priors)}")
    scores = np.sqrt(np.clip(conf[:, 1], 0, 1) * np.clip(iou[:, 0], 0, 1))
    size = np.array([width, height], np.float32)
    corners = np.stack([(priors[:, :2] + loc[:, a:a + 2] * LPD_VARIANCE * priors[:, 2:]) * size
                        for a in (4, 6, 10, 12)], 1)
    return np.concatenate([corners.min(1), corners.max(1)], 1), scores


def nms(xyxy, scores, conf_threshold, iou_threshold, max_det):
    keep = scores >= conf_threshold
    xyxy, scores = xyxy[keep], scores[keep]
    if not len(xyxy):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1).tolist()
    kept = cv2.dnn.NMSBoxes(xywh, scores.astype(float).tolist(), conf_threshold, iou_threshold)
    kept = np.asarray(kept, dtype=int).reshape(-1)[:max_det]
    return xyxy[kept].astype(np.float32), scores[kept].astype(np.float32)


class PrivacyDetector:
    DEFAULTS = {"family": "yunet_face", "conf_threshold": 0.3, "iou_threshold": 0.3, "scale": 1.0,  # noqa: RUF012
                "max_box_fraction": 1.0, "max_det": 100, "threads": 1}

    def __init__(self, path, **params):
        p = {**self.DEFAULTS, **params}
        self.family = p["family"]
        if self.family not in ("yunet_face", "lpd_yunet"):
            raise ValueError(f"unknown privacy detector family {self.family!r}: use yunet_face or lpd_yunet")
        self.conf, self.iou, self.max_det = float(p["conf_threshold"]), float(p["iou_threshold"]), int(p["max_det"])
        self.scale, self.max_fraction = float(p["scale"]), float(p["max_box_fraction"])
        self.session = dynamic_session(path, int(p["threads"]))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._priors = {}

    def prepare(self, rgb):
        """RGB image → (1, 3, H, W) float32 BGR tensor at `scale`, padded to multiples of 32, and the scale used."""
        h, w = rgb.shape[:2]
        sw, sh = max(1, round(w * self.scale)), max(1, round(h * self.scale))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if (sw, sh) != (w, h):
            bgr = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR if self.scale > 1 else cv2.INTER_AREA)
        canvas = np.zeros(((sh + 31) // 32 * 32, (sw + 31) // 32 * 32, 3), np.float32)
        canvas[:sh, :sw] = bgr
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), (sw / w, sh / h)

    def candidates(self, rgb):
        """Every candidate of one image in its own pixels, before threshold and NMS: (xyxy, scores)."""
        tensor, (fx, fy) = self.prepare(rgb)
        height, width = tensor.shape[2:]
        outputs = self.session.run(self.output_names, {self.input_name: tensor})
        if self.family == "yunet_face":
            xyxy, scores = face_candidates(outputs, self.output_names, width)
        else:
            if (width, height) not in self._priors:
                self._priors[(width, height)] = lpd_priors(width, height)
            xyxy, scores = plate_candidates(outputs, self._priors[(width, height)], width, height)
        xyxy = xyxy / np.array([fx, fy, fx, fy], np.float32)
        h, w = rgb.shape[:2]
        return np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32), scores.astype(np.float32)

    def detect_one(self, rgb):
        xyxy, scores = self.candidates(rgb)
        h, w = rgb.shape[:2]
        sized = ((xyxy[:, 2] - xyxy[:, 0]) <= self.max_fraction * w) & \
                ((xyxy[:, 3] - xyxy[:, 1]) <= self.max_fraction * h)
        return nms(xyxy[sized], scores[sized], self.conf, self.iou, self.max_det)

    def detect(self, frames_rgb):
        return [self.detect_one(rgb) for rgb in frames_rgb]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{config['name']}: {path} is missing; run `make setup` (it links the detector "
                                    "from ../shared/models/privacy after checking privacy.sha256)")
        self.name = config["name"]
        self.model = PrivacyDetector(path, **{k: v for k, v in params.items() if k in PrivacyDetector.DEFAULTS})

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                frames = pb_utils.get_input_tensor_by_name(request, "FRAMES").as_numpy()
                results = self.model.detect(list(frames))
                n = max([len(r[0]) for r in results] + [1])
                boxes = np.zeros((len(results), n, 4), np.float32)
                scores = np.zeros((len(results), n), np.float32)
                classes = np.full((len(results), n), -1, np.int32)
                count = np.zeros((len(results), 1), np.int32)
                for b, (xyxy, sc) in enumerate(results):
                    k = len(xyxy)
                    boxes[b, :k], scores[b, :k], classes[b, :k], count[b, 0] = xyxy, sc, 0, k
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("BOXES", boxes), pb_utils.Tensor("SCORES", scores),
                    pb_utils.Tensor("CLASSES", classes), pb_utils.Tensor("COUNT", count)]))
            except Exception as exc:  # noqa: BLE001 - report per request, keep serving
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {exc}")))
        return responses
