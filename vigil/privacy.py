"""Privacy per camera: what the camera file asks for (`privacy:`), where plates are searched, and the blur itself.

A camera with `privacy: {blur: [faces, plates]}` has those regions blurred by ingest before its frame is written to
the frame store, so no service, console or clip ever holds its raw pixels (services/ingest/privacy.py calls the
detectors in Triton). Pure logic over arrays: the plate search regions are the two ends of each vehicle box along
its long axis (plates sit at the front and the rear), and the blur is a coarse mosaic of the padded box, which,
unlike a Gaussian blur, leaves nothing to deconvolve.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

BlurTarget = Literal["faces", "plates"]
# COCO ids of the vehicles whose plates are searched: car, motorcycle, bus, truck.
VEHICLE_CLASSES = (2, 3, 5, 7)


class PrivacyConfig(BaseModel):
    """The camera file's `privacy:` of one camera."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    blur: list[BlurTarget] = Field(default_factory=list, description="Blurred before a frame is stored: faces, "
                                   "plates (licence plates, searched at the ends of the detected vehicles).")
    retention_hours: float | None = Field(None, gt=0, description="Frames of this camera older than this are removed "
                                          "from the frame store (at most VIGIL_FRAME_RETENTION_HOURS: it only "
                                          "shortens).")
    vehicle_model: str | None = Field(None, description="Triton detector whose vehicles' ends are searched for plates; "
                                      "default: the camera's fine-tune <VIGIL_PRIVACY_VEHICLE_MODEL>__<camera> when "
                                      "Triton serves it, else VIGIL_PRIVACY_VEHICLE_MODEL.")

    @field_validator("blur")
    @classmethod
    def _unique(cls, blur: list[str]) -> list[str]:
        repeated = sorted({b for b in blur if blur.count(b) > 1})
        if repeated:
            raise ValueError(f"blur lists {repeated} more than once")
        return blur


def plate_regions(vehicle_boxes: np.ndarray, width: int, height: int, depth: float = 0.3, margin: float = 0.1,
                  edge_px: int = 4, square: float = 1.35) -> list[tuple[int, int, int, int]]:
    """Integer xyxy regions at the ends of each vehicle box where its plates can be: a band `depth` of the box's
    length (at least 0.45 of its width) at each end along the long axis, widened by `margin`. A box cut by the frame
    edge is oriented across that edge, and only its visible end is searched (the other is out of view); a box within
    `square` of square gets the bands of both axes."""
    regions = []
    for x1, y1, x2, y2 in np.asarray(vehicle_boxes, dtype=np.float64).reshape(-1, 4):
        w, h = x2 - x1, y2 - y1
        top, bottom = y1 <= edge_px, y2 >= height - edge_px
        left, right = x1 <= edge_px, x2 >= width - edge_px
        if (top or bottom) != (left or right):
            axes = {"vertical" if top or bottom else "horizontal"}
        elif max(w, h) <= square * max(min(w, h), 1.0):
            # about square (a car turning, or half out of view but not yet touching the edge): its long axis is a
            # guess, and a wrong guess leaves the plate unblurred, so both axes' ends are searched
            axes = {"vertical", "horizontal"}
        else:
            axes = {"vertical" if h >= w else "horizontal"}
        bands = []
        if "vertical" in axes:
            pad, reach = w * margin, max(h * depth, 0.45 * w)
            if not top:
                bands.append((x1 - pad, y1 - pad, x2 + pad, y1 + reach))
            if not bottom:
                bands.append((x1 - pad, y2 - reach, x2 + pad, y2 + pad))
        if "horizontal" in axes:
            pad, reach = h * margin, max(w * depth, 0.45 * h)
            if not left:
                bands.append((x1 - pad, y1 - pad, x1 + reach, y2 + pad))
            if not right:
                bands.append((x2 - reach, y1 - pad, x2 + pad, y2 + pad))
        for bx1, by1, bx2, by2 in bands:
            box = (int(max(0, bx1)), int(max(0, by1)), int(min(width, bx2)), int(min(height, by2)))
            if box[2] - box[0] >= 8 and box[3] - box[1] >= 8:
                regions.append(box)
    return regions


def padded(boxes: np.ndarray, width: int, height: int, pad: float = 0.15, min_pad_px: int = 2) -> np.ndarray:
    """Integer xyxy boxes grown by `pad` of their size (at least `min_pad_px`) on each side, clipped to the frame."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    grow = np.maximum(np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1) * pad, min_pad_px)
    grown = np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], 1)
    grown = np.clip(np.round(grown), 0, [width, height, width, height]).astype(np.int64)
    return grown[(grown[:, 2] > grown[:, 0]) & (grown[:, 3] > grown[:, 1])]


def blur(bgr: np.ndarray, boxes: np.ndarray, pad: float = 0.15, cells: int = 4) -> np.ndarray:
    """A copy of the frame with each padded box replaced by a mosaic of `cells` blocks across its shorter side
    (a plate's characters or a face's features merge into a few flat blocks). Pixels outside the boxes are kept."""
    import cv2  # here, not at the top: the camera file imports this module in processes that never blur

    out = bgr.copy()
    height, width = bgr.shape[:2]
    for x1, y1, x2, y2 in padded(boxes, width, height, pad):
        region = out[y1:y2, x1:x2]
        block = max(2, min(x2 - x1, y2 - y1) // cells)
        small = cv2.resize(region, (max(1, (x2 - x1) // block), max(1, (y2 - y1) // block)),
                           interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    return out


def covered(box, boxes, pad: float = 0.15, width: int = 1 << 30, height: int = 1 << 30) -> float:
    """Share of `box` (xyxy) that blurring `boxes` with `pad` hides: how the evaluation scores a catch."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    mask = np.zeros((max(1, y2 - y1), max(1, x2 - x1)), bool)
    for bx1, by1, bx2, by2 in padded(boxes, width, height, pad) if len(boxes) else []:
        mask[max(0, by1 - y1):max(0, by2 - y1), max(0, bx1 - x1):max(0, bx2 - x1)] = True
    return float(mask.mean())
