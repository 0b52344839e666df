"""The labelling loop: `vigil review-export` picks the frames a camera's model is least sure about and writes them with
their predicted boxes as COCO JSON (CVAT "COCO 1.0", Label Studio); `vigil review-import` reads the corrected file
back into the label store (`vigil/labels.py`), which detector adaptation uses ahead of pseudo-labels.

A frame is picked for one or more reasons, each adding to its score:

- `low_confidence`: a box with confidence in the uncertain band [review_conf_low, review_conf_high);
- `class_flip`: a box whose track has another class in most of its frames (the track's majority class);
- `motion_missed`: a blob of the motion detector (run in-process over the camera's frames in capture order) with no
  predicted box at IoU >= review_motion_iou; `motion_unmatched`: a predicted box with no motion blob there.

An export folder holds `annotations.json` (COCO), `images/<file>.jpg` and `manifest.json` (file name → frame uri,
capture time, size and why the frame was picked). Annotation tools drop unknown JSON fields, so the import resolves
images by file name through the manifest and categories by name.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import Field

from vigil.config import Settings
from vigil.detections import box_iou
from vigil.labels import LabeledFrame, LabelStore, default_root

UTC = datetime.UTC
MANIFEST_KIND = "vigil-review-export"
# Vigil's class ids (the 80-class COCO index detectors emit) → names, and the official COCO category ids written to
# the JSON (person is 1 there: some tools treat category id 0 as "no label"). The import maps by name only.
CLASS_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
COCO_CATEGORY_IDS = {0: 1, 1: 2, 2: 3, 3: 4, 5: 6, 7: 8}
CLASS_BY_NAME = {name: cls for cls, name in CLASS_NAMES.items()}
WEIGHTS = {"class_flip": 1.5, "motion_missed": 1.2, "low_confidence": 1.0, "motion_unmatched": 0.5}


class ReviewSettings(Settings):
    review_conf_low: float = Field(0.25, ge=0, le=1, description="Lower edge of the uncertain confidence band.")
    review_conf_high: float = Field(0.6, ge=0, le=1, description="Upper edge (exclusive) of the uncertain band.")
    review_motion_iou: float = Field(0.3, gt=0, le=1, description="IoU at which a motion blob and a box agree.")
    review_limit: int = Field(100, ge=1, description="Frames per export when --limit is not given.")
    review_labels_dir: Path = Field(Path(""), description="Label store root; empty = <data_dir>/labels.")

    @property
    def labels_root(self) -> Path:
        return self.review_labels_dir if str(self.review_labels_dir) not in ("", ".") else default_root(self.data_dir)


class ReviewError(ValueError):
    """Bad input to an export or import, with a message meant for the person running the command."""


# ---- time --------------------------------------------------------------------------------------------------------

def parse_time(text: str) -> int:
    """ISO 8601 (`2027-01-15T10:30:00Z`, `2027-01-15 10:30:00.250`, a date) → epoch ms; no zone means UTC."""
    try:
        value = datetime.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ReviewError(f"{text!r} is not an ISO 8601 time (e.g. 2027-01-15T10:30:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def iso(ts_ms: int) -> str:
    return datetime.datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- reading the store -------------------------------------------------------------------------------------------

@dataclass
class FrameRow:
    frame_id: str
    uri: str
    ts_ms: int
    sequence: int
    width: int
    height: int
    inferred: bool  # the frame has a detections row (False: only good for warming up the motion detector)
    model: str
    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    track_id: np.ndarray


FRAMES_SQL = """
SELECT f.frame_id, f.uri, toUnixTimestamp64Milli(f.capture_ts) AS ts_ms, f.sequence, f.width, f.height,
       d.frame_id != '' AS inferred, concat(d.model_name, ':', d.model_version) AS model,
       d.x1, d.y1, d.x2, d.y2, d.class_id, d.confidence, d.track_id
FROM (SELECT frame_id, uri, capture_ts, sequence, width, height FROM frames FINAL
      WHERE camera_id = {camera:String} AND capture_ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
        AND capture_ts < fromUnixTimestamp64Milli({until:Int64}, 'UTC')) AS f
LEFT JOIN (SELECT frame_id, model_name, model_version, x1, y1, x2, y2, class_id, confidence, track_id
           FROM detections FINAL
           WHERE camera_id = {camera:String} AND capture_ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
             AND capture_ts < fromUnixTimestamp64Milli({until:Int64}, 'UTC')) AS d
ON d.frame_id = f.frame_id
ORDER BY ts_ms, f.sequence
"""

PREROLL_SQL = """
SELECT frame_id, uri, toUnixTimestamp64Milli(capture_ts) AS ts_ms, sequence, width, height
FROM frames FINAL
WHERE camera_id = {camera:String} AND capture_ts < fromUnixTimestamp64Milli({since:Int64}, 'UTC')
  AND capture_ts >= fromUnixTimestamp64Milli({since:Int64} - 600000, 'UTC')
ORDER BY capture_ts DESC, sequence DESC LIMIT {n:UInt32}
"""


def load_frames(client, camera: str, since_ms: int, until_ms: int) -> list[FrameRow]:
    rows = []
    result = client.query(FRAMES_SQL, parameters={"camera": camera, "since": since_ms, "until": until_ms})
    for (frame_id, uri, ts_ms, seq, width, height, inferred, model, x1, y1, x2, y2, cls, conf,
         tid) in result.result_rows:
        xyxy = np.stack([np.asarray(v, np.float32) for v in (x1, y1, x2, y2)], axis=1).reshape(-1, 4)
        rows.append(FrameRow(frame_id, uri, int(ts_ms), int(seq), int(width), int(height), bool(inferred),
                             model if inferred else "", xyxy, np.asarray(cls, np.int32),
                             np.asarray(conf, np.float32), np.asarray(tid, np.int64)))
    return rows


def load_preroll(client, camera: str, since_ms: int, n: int) -> list[FrameRow]:
    """Up to n frames just before the period (at most 10 min before), oldest first: motion detector warm-up."""
    if n <= 0:
        return []
    result = client.query(PREROLL_SQL, parameters={"camera": camera, "since": since_ms, "n": n})
    empty = np.zeros((0, 4), np.float32)
    return [FrameRow(fid, uri, int(ts), int(seq), int(w), int(h), False, "", empty, np.zeros(0, np.int32),
                     np.zeros(0, np.float32), np.zeros(0, np.int64))
            for fid, uri, ts, seq, w, h in reversed(result.result_rows)]


# ---- scoring -----------------------------------------------------------------------------------------------------

@dataclass
class Reason:
    kind: str  # low_confidence | class_flip | motion_missed | motion_unmatched
    detail: str
    score: float

    def to_json(self) -> dict:
        return {"kind": self.kind, "detail": self.detail, "score": round(self.score, 3)}


@dataclass
class Candidate:
    row: FrameRow
    reasons: list[Reason] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(r.score for r in self.reasons)


def _box(b) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in b) + ")"


def low_confidence_reasons(row: FrameRow, low: float, high: float) -> list[Reason]:
    reasons = []
    for i in np.flatnonzero((row.confidence >= low) & (row.confidence < high)):
        reasons.append(Reason("low_confidence", f"{CLASS_NAMES[int(row.class_id[i])]} {_box(row.xyxy[i])} at "
                              f"confidence {row.confidence[i]:.2f} (uncertain band {low:.2f}-{high:.2f})",
                              WEIGHTS["low_confidence"]))
    return reasons


def track_majorities(rows: list[FrameRow]) -> dict[int, tuple[int, int, int]]:
    """track id → (majority class, boxes of that class, boxes in all), over the rows given. Ties go to the class with
    the higher summed confidence."""
    counts: dict[int, Counter] = defaultdict(Counter)
    confidence: dict[int, Counter] = defaultdict(Counter)
    for row in rows:
        for tid, cls, conf in zip(row.track_id, row.class_id, row.confidence):
            if tid >= 0:
                counts[int(tid)][int(cls)] += 1
                confidence[int(tid)][int(cls)] += float(conf)
    out = {}
    for tid, counter in counts.items():
        if len(counter) < 2:
            continue
        cls = max(counter, key=lambda c: (counter[c], confidence[tid][c], -c))
        out[tid] = (cls, counter[cls], sum(counter.values()))
    return out


def class_flip_reasons(row: FrameRow, majorities: dict[int, tuple[int, int, int]]) -> list[Reason]:
    reasons = []
    for i, (tid, cls) in enumerate(zip(row.track_id, row.class_id)):
        if int(tid) in majorities and majorities[int(tid)][0] != int(cls):
            major, n_major, n_all = majorities[int(tid)]
            reasons.append(Reason("class_flip", f"track {int(tid)} is {CLASS_NAMES[major]} in {n_major} of {n_all} "
                                  f"boxes, {CLASS_NAMES[int(cls)]} here {_box(row.xyxy[i])}", WEIGHTS["class_flip"]))
    return reasons


def motion_reasons(row: FrameRow, motion: np.ndarray, min_iou: float) -> list[Reason]:
    iou = box_iou(np.asarray(motion, np.float32).reshape(-1, 4), row.xyxy)
    reasons = []
    for j in range(len(motion)):
        if not len(row.xyxy) or iou[j].max() < min_iou:
            reasons.append(Reason("motion_missed", f"motion blob {_box(motion[j])} has no predicted box at "
                                  f"IoU >= {min_iou:.2f}", WEIGHTS["motion_missed"]))
    for i in range(len(row.xyxy)):
        if not len(motion) or iou[:, i].max() < min_iou:
            reasons.append(Reason("motion_unmatched", f"predicted {CLASS_NAMES[int(row.class_id[i])]} "
                                  f"{_box(row.xyxy[i])} has no motion blob at IoU >= {min_iou:.2f}",
                                  WEIGHTS["motion_unmatched"]))
    return reasons


def decode_rgb(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run_motion(detector, camera: str, rows: list[FrameRow], read) -> tuple[dict[str, np.ndarray], int]:
    """The motion detector over `rows` in capture order → (frame_id → blobs, for frames after its warm-up; frames
    that could not be read)."""
    warmup = int(getattr(detector, "p", {}).get("warmup_frames", 0))
    blobs, seen, unreadable = {}, 0, 0
    for row in rows:
        try:
            rgb = decode_rgb(read(row.uri))
        except (OSError, ValueError):
            unreadable += 1
            continue
        boxes, _, _ = detector.process(camera, rgb)
        seen += 1
        if seen > warmup:  # the first frame seeds the background, the next ones up to `warmup` learn it
            blobs[row.frame_id] = np.asarray(boxes, np.float32).reshape(-1, 4)
    return blobs, unreadable


# ---- export ------------------------------------------------------------------------------------------------------

def file_name(camera: str, ts_ms: int, taken: set[str]) -> str:
    """`<camera>_<YYYYmmddTHHMMSS>-<mmm>Z.jpg`: camera and capture time, only characters every tool keeps."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", camera).strip("-.") or "camera"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ts_ms // 1000)) + f"-{ts_ms % 1000:03d}Z"
    name, n = f"{safe}_{stamp}.jpg", 1
    while name in taken:
        n += 1
        name = f"{safe}_{stamp}_{n}.jpg"
    taken.add(name)
    return name


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def coco_document(camera: str, since_ms: int, until_ms: int, chosen: list[tuple[str, Candidate]]) -> dict:
    images, annotations = [], []
    for image_id, (name, cand) in enumerate(chosen, start=1):
        row = cand.row
        images.append({"id": image_id, "file_name": name, "width": row.width, "height": row.height,
                       "date_captured": iso(row.ts_ms), "license": 0, "flickr_url": "", "coco_url": ""})
        for box, cls, conf, tid in zip(row.xyxy, row.class_id, row.confidence, row.track_id):
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            w, h = round(x2 - x1, 2), round(y2 - y1, 2)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": COCO_CATEGORY_IDS[int(cls)], "bbox": [x1, y1, w, h],
                                "area": round(w * h, 2), "iscrowd": 0, "segmentation": [],
                                "score": round(float(conf), 4), "track_id": int(tid)})
    return {
        "info": {"description": f"Vigil review export: camera {camera}, {iso(since_ms)} to {iso(until_ms)}",
                 "version": "1.0", "year": time.gmtime().tm_year, "contributor": "vigil review-export",
                 "date_created": iso(int(time.time() * 1000))},
        "licenses": [{"id": 0, "name": "", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": COCO_CATEGORY_IDS[cls], "name": name, "supercategory": ""}
                       for cls, name in CLASS_NAMES.items()],
    }


@dataclass
class ExportResult:
    out: Path
    frames_scanned: int
    frames_inferred: int
    frames_unreadable: int
    flagged: dict[str, int]  # reason kind → frames with it
    candidates: int
    chosen: list[tuple[str, Candidate]]
    other_class_boxes: int


def export_review(settings: ReviewSettings, camera: str, since: str, until: str, out: Path, limit: int | None = None,
                  client=None, store=None, detector=None) -> ExportResult:
    """Score a camera's frames in [since, until), write the `limit` most uncertain to `out`."""
    since_ms, until_ms = parse_time(since), parse_time(until)
    if until_ms <= since_ms:
        raise ReviewError(f"--until ({until}) must be after --since ({since})")
    limit = limit or settings.review_limit
    if limit < 1:
        raise ReviewError("--limit must be at least 1")
    if not settings.review_conf_low < settings.review_conf_high:
        raise ReviewError("review_conf_low must be below review_conf_high")
    out = Path(out)
    if (out / "manifest.json").exists() or (out / "annotations.json").exists():
        raise ReviewError(f"{out} already holds a review export; give a new folder")
    if client is None:
        from vigil.store.client import connect

        client = connect(settings)
    if store is None:
        from vigil.framestore import open_frame_store

        store = open_frame_store(settings.frame_store_uri)
    if detector is None:
        from app.inprocess import motion_detector

        detector = motion_detector()

    rows = load_frames(client, camera, since_ms, until_ms)
    other = 0
    for row in rows:  # only the classes the review covers take part
        keep = np.isin(row.class_id, list(CLASS_NAMES))
        other += int((~keep).sum())
        row.xyxy, row.class_id, row.confidence, row.track_id = (row.xyxy[keep], row.class_id[keep],
                                                                row.confidence[keep], row.track_id[keep])
    warmup = int(getattr(detector, "p", {}).get("warmup_frames", 0))
    preroll = load_preroll(client, camera, since_ms, warmup) if rows else []
    blobs, unreadable = run_motion(detector, camera, preroll + rows, store.get)
    readable = set(blobs)
    inferred = [r for r in rows if r.inferred]
    majorities = track_majorities(inferred)
    candidates, flagged = [], Counter()
    for row in inferred:
        cand = Candidate(row, low_confidence_reasons(row, settings.review_conf_low, settings.review_conf_high)
                         + class_flip_reasons(row, majorities))
        if row.frame_id in readable:
            cand.reasons += motion_reasons(row, blobs[row.frame_id], settings.review_motion_iou)
        if cand.reasons:
            candidates.append(cand)
            flagged.update({r.kind for r in cand.reasons})
    candidates.sort(key=lambda c: (-c.score, c.row.ts_ms, c.row.sequence))

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    chosen, taken = [], set()
    for cand in candidates:
        if len(chosen) >= limit:
            break
        try:
            data = store.get(cand.row.uri)
            if not data.startswith(b"\xff\xd8"):  # not a JPEG: re-encode
                import cv2

                _, buf = cv2.imencode(".jpg", cv2.cvtColor(decode_rgb(data), cv2.COLOR_RGB2BGR),
                                      [cv2.IMWRITE_JPEG_QUALITY, 95])
                data = buf.tobytes()
        except (OSError, ValueError):
            continue  # gone from the frame store since the motion pass
        name = file_name(camera, cand.row.ts_ms, taken)
        (out / "images" / name).write_bytes(data)
        chosen.append((name, cand))
    chosen.sort(key=lambda item: (item[1].row.ts_ms, item[1].row.sequence))  # capture order reads best in a tool

    _write_json(out / "annotations.json", coco_document(camera, since_ms, until_ms, chosen))
    manifest = {
        "kind": MANIFEST_KIND, "version": 1, "camera_id": camera, "since": iso(since_ms), "until": iso(until_ms),
        "created": iso(int(time.time() * 1000)),
        "settings": {"conf_low": settings.review_conf_low, "conf_high": settings.review_conf_high,
                     "motion_iou": settings.review_motion_iou},
        "frames": {name: {"uri": c.row.uri, "frame_id": c.row.frame_id, "capture_ts_ms": c.row.ts_ms,
                          "capture_ts": iso(c.row.ts_ms), "sequence": c.row.sequence, "width": c.row.width,
                          "height": c.row.height, "model": c.row.model, "predicted_boxes": len(c.row.xyxy),
                          "score": round(c.score, 3), "reasons": [r.to_json() for r in c.reasons]}
                   for name, c in chosen},
    }
    _write_json(out / "manifest.json", manifest)  # last: a folder with a manifest is a complete export
    return ExportResult(out, len(rows), len(inferred), unreadable, dict(flagged), len(candidates), chosen, other)


# ---- import ------------------------------------------------------------------------------------------------------

@dataclass
class ImportResult:
    frames: list[LabeledFrame]
    boxes: int
    empty_frames: int
    not_in_file: int  # frames of the export the file does not cover


def _load_manifest(export_dir: Path, camera: str) -> dict:
    path = export_dir / "manifest.json"
    if not path.is_file():
        raise ReviewError(f"no manifest.json in {export_dir}: pass --export DIR, the folder `vigil review-export` "
                          "wrote (the manifest maps each image back to its frame)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReviewError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise ReviewError(f"{path} is not a manifest written by `vigil review-export`")
    if manifest["camera_id"] != camera:
        raise ReviewError(f"the export in {export_dir} is of camera {manifest['camera_id']!r}, not {camera!r}")
    return manifest


def resolve_image(name: str, frames: dict) -> str | None:
    """An image's file name as a tool exports it → the manifest's name. Tools may add folders (`images/...`) and
    prefixes (Label Studio's `8f3a2b1c-` on uploads): match the basename, then the one manifest name it ends with."""
    base = re.split(r"[\\/]", str(name))[-1]
    if base in frames:
        return base
    ends = [n for n in frames if base.endswith(n)]
    return ends[0] if len(ends) == 1 else None


def read_corrections(camera: str, coco_path: Path, export_dir: Path | None = None) -> ImportResult:
    """Validate a corrected COCO file against its export; every problem is reported, nothing is returned half-done."""
    coco_path = Path(coco_path)
    export_dir = Path(export_dir) if export_dir else coco_path.parent
    manifest = _load_manifest(export_dir, camera)
    try:
        doc = json.loads(coco_path.read_text())
    except FileNotFoundError:
        raise ReviewError(f"{coco_path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"{coco_path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "categories")):
        raise ReviewError(f"{coco_path} is not a COCO file: it needs lists 'images', 'annotations' and 'categories'")
    annotations = doc.get("annotations") or []
    if not isinstance(annotations, list):
        raise ReviewError(f"{coco_path}: 'annotations' must be a list")
    frames_by_name = manifest["frames"]
    errors: list[str] = []

    categories = {}
    for cat in doc["categories"]:
        if isinstance(cat, dict) and "id" in cat:
            categories[cat["id"]] = str(cat.get("name", "")).strip()

    images = {}  # image id → manifest name
    claimed = {}
    for img in doc["images"]:
        if not isinstance(img, dict) or "id" not in img:
            errors.append(f"an image entry without an id: {img!r}")
            continue
        name = resolve_image(img.get("file_name", ""), frames_by_name)
        if name is None:
            errors.append(f"image {img.get('file_name')!r} (id {img['id']}) is not in the export "
                          f"({export_dir / 'manifest.json'}): a frame of another export or camera?")
            continue
        if name in claimed:
            errors.append(f"image {img.get('file_name')!r} appears twice (ids {claimed[name]} and {img['id']})")
            continue
        frame = frames_by_name[name]
        for key in ("width", "height"):
            if img.get(key) not in (None, 0, frame[key]):
                errors.append(f"image {name}: {key} {img[key]} differs from the exported frame's {frame[key]}")
        claimed[name] = img["id"]
        images[img["id"]] = name

    boxes: dict[str, list[tuple[list[float], int]]] = {name: [] for name in images.values()}
    for ann in annotations:
        if not isinstance(ann, dict):
            errors.append(f"an annotation that is not an object: {ann!r}")
            continue
        where = f"annotation {ann.get('id')}"
        if ann.get("image_id") not in images:
            if not any(img.get("id") == ann.get("image_id") for img in doc["images"] if isinstance(img, dict)):
                errors.append(f"{where}: image_id {ann.get('image_id')} is not among the file's images")
            continue  # an image already reported
        name = images[ann["image_id"]]
        where = f"annotation {ann.get('id')} on {name}"
        if ann.get("category_id") not in categories:
            errors.append(f"{where}: category_id {ann.get('category_id')} is not among the file's categories")
            continue
        cat_name = categories[ann["category_id"]]
        if cat_name.lower() not in CLASS_BY_NAME:
            errors.append(f"{where}: unknown category {cat_name!r} (known: {', '.join(CLASS_BY_NAME)})")
            continue
        bbox = ann.get("bbox")
        if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
            errors.append(f"{where}: bbox {bbox!r} is not [x, y, width, height]")
            continue
        x, y, w, h = (float(v) for v in bbox)
        width, height = frames_by_name[name]["width"], frames_by_name[name]["height"]
        if w <= 0 or h <= 0:
            errors.append(f"{where}: bbox {bbox} has a non-positive size")
            continue
        tol = 1.0  # tools round; a pixel over the edge is clipped, more is an error
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            errors.append(f"{where}: bbox {bbox} lies outside the {width}x{height} image")
            continue
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if x2 <= x1 or y2 <= y1:
            errors.append(f"{where}: bbox {bbox} has no area inside the image")
            continue
        boxes[name].append(([x1, y1, x2, y2], CLASS_BY_NAME[cat_name.lower()]))

    if errors:
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise ReviewError(f"{coco_path}: {len(errors)} problem(s), nothing imported:\n  {shown}")
    labelled = []
    for name, items in boxes.items():
        frame = frames_by_name[name]
        labelled.append(LabeledFrame(
            uri=frame["uri"], camera_id=camera, capture_ts_ms=frame["capture_ts_ms"], width=frame["width"],
            height=frame["height"], xyxy=np.asarray([b for b, _ in items], np.float32).reshape(-1, 4),
            class_id=np.asarray([c for _, c in items], np.int32), source="review"))
    labelled.sort(key=lambda f: f.capture_ts_ms)
    return ImportResult(labelled, sum(len(f.xyxy) for f in labelled), sum(1 for f in labelled if not len(f.xyxy)),
                        len(frames_by_name) - len(labelled))


def import_review(settings: ReviewSettings, camera: str, coco_path: Path, export_dir: Path | None = None,
                  labels: LabelStore | None = None) -> ImportResult:
    result = read_corrections(camera, coco_path, export_dir)
    (labels or LabelStore(settings.labels_root)).put(result.frames)
    return result


# ---- the commands ------------------------------------------------------------------------------------------------

def cmd_review_export(args, console) -> int:
    from rich.table import Table

    settings = ReviewSettings()
    try:
        result = export_review(settings, args.camera, args.since, args.until, Path(args.out), args.limit)
    except ReviewError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    table = Table(title=f"review export: camera {args.camera}, the {len(result.chosen)} most uncertain frames")
    for column in ("file", "captured (UTC)", "score", "boxes", "why"):
        table.add_column(column)
    for name, cand in result.chosen:
        table.add_row(name, iso(cand.row.ts_ms), f"{cand.score:.1f}", str(len(cand.row.xyxy)),
                      "\n".join(r.detail for r in cand.reasons))
    console.print(table)
    flagged = ", ".join(f"{kind} {n}" for kind, n in sorted(result.flagged.items())) or "none"
    console.print(f"{result.frames_scanned} frames in the period, {result.frames_inferred} with detections, "
                  f"{result.candidates} flagged (frames per reason: {flagged}); wrote {len(result.chosen)} to "
                  f"{result.out} (annotations.json, images/, manifest.json)")
    if result.frames_unreadable:
        console.print(f"[yellow]{result.frames_unreadable} frames were not in the frame store (retention?)[/yellow]")
    if result.other_class_boxes:
        console.print(f"{result.other_class_boxes} boxes of classes outside {', '.join(CLASS_NAMES.values())} "
                      "were left out")
    if not result.frames_scanned:
        console.print("[yellow]no frames of this camera in the period[/yellow]")
    return 0


def cmd_review_import(args, console) -> int:
    settings = ReviewSettings()
    try:
        result = import_review(settings, args.camera, Path(args.file), Path(args.export) if args.export else None)
    except ReviewError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    console.print(f"imported {len(result.frames)} frames ({result.boxes} boxes, {result.empty_frames} verified "
                  f"empty) of camera {args.camera} into {settings.labels_root}"
                  + (f"; {result.not_in_file} exported frames were not in the file" if result.not_in_file else ""))
    return 0
