"""YOLO-family ONNX detector in Triton's python backend: letterbox, onnxruntime, decode, class-wise NMS.

Handles both export layouts: YOLOv8/v11 `[B, 4 + classes, anchors]` (no objectness) and YOLOv5 `[B, anchors,
5 + classes]` (objectness × class score). Boxes come back in pixels of the original frame, in Vigil's detector
output contract (BOXES/SCORES/CLASSES/COUNT padded per batch)."""

import json
import os

import cv2
import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by tests without Triton
    pb_utils = None


def letterbox(frame, size):
    """Resize keeping aspect into size x size, pad with 114; returns (image, scale, (pad_x, pad_y))."""
    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return canvas, scale, (pad_x, pad_y)


def decode(output, conf_threshold, iou_threshold, max_det):
    """One image's raw output (2-D) -> (xyxy in input pixels, scores, class indices) after NMS."""
    if output.shape[0] < output.shape[1]:  # v8/v11: (4 + nc, anchors)
        output = output.T
        boxes, class_scores = output[:, :4], output[:, 4:]
        objectness = None
    else:  # v5: (anchors, 5 + nc)
        boxes, objectness, class_scores = output[:, :4], output[:, 4], output[:, 5:]
    classes = class_scores.argmax(1)
    scores = class_scores[np.arange(len(classes)), classes]
    if objectness is not None:
        scores = scores * objectness
    keep = scores >= conf_threshold
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    xyxy = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                     boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], 1)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in xyxy]
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(float).tolist(), classes.tolist(), conf_threshold, iou_threshold)
    kept = np.asarray(kept, dtype=int).reshape(-1)[:max_det]
    return xyxy[kept].astype(np.float32), scores[kept].astype(np.float32), classes[kept].astype(np.int32)


class YoloOnnx:
    def __init__(self, path, input_size=640, conf_threshold=0.25, iou_threshold=0.45, max_det=100, class_map=None,
                 threads=1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size, self.conf, self.iou, self.max_det = input_size, conf_threshold, iou_threshold, max_det
        self.class_map = np.asarray(class_map, dtype=np.int32) if class_map else None

    def detect(self, frames_rgb):
        prepared = [letterbox(f, self.input_size) for f in frames_rgb]
        batch = np.stack([p[0] for p in prepared]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        outputs = self.session.run(None, {self.input_name: batch})[0]
        results = []
        for output, (_, scale, (pad_x, pad_y)), frame in zip(outputs, prepared, frames_rgb):
            xyxy, scores, classes = decode(output, self.conf, self.iou, self.max_det)
            xyxy = (xyxy - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
            h, w = frame.shape[:2]
            xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
            if self.class_map is not None:
                classes = self.class_map[classes]
            results.append((xyxy, scores, classes))
        return results


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"yolo_onnx: put your YOLO ONNX export at {path}")
        self.model = YoloOnnx(path, int(params.get("input_size", 640)), float(params.get("conf_threshold", 0.25)),
                              float(params.get("iou_threshold", 0.45)), int(params.get("max_det", 100)),
                              json.loads(params["class_map"]) if params.get("class_map") else None,
                              int(params.get("threads", 1)))

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
                for b, (xyxy, sc, cl) in enumerate(results):
                    k = len(xyxy)
                    boxes[b, :k], scores[b, :k], classes[b, :k], count[b, 0] = xyxy, sc, cl, k
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("BOXES", boxes), pb_utils.Tensor("SCORES", scores),
                    pb_utils.Tensor("CLASSES", classes), pb_utils.Tensor("COUNT", count)]))
            except Exception as exc:  # noqa: BLE001 - report per request, keep serving
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"yolo_onnx: {exc}")))
        return responses
