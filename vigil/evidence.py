"""Incident evidence, as pure functions: where it goes, the snapshot and the clip.

- `evidence_uris(frame_store_uri, camera_id, incident_id)`: the deterministic snapshot (.jpg) and clip (.mp4) URIs of
  an incident, `<store>/_evidence/<camera_id>/<safe name of the id>.jpg|.mp4`, exactly as the frame store at
  `frame_store_uri` addresses them (so the incident job can put them on the record before the files exist).
- `draw_snapshot(jpeg, boxes, labels)`: the frame with the involved boxes and their labels drawn, as JPEG.
- `write_clip(frames)`: JPEG frames with capture times → an H.264 MP4 (yuv420p, faststart) whose presentation times
  are the capture times, so a clip sampled at 5 fps plays back in real time. Corrupt or empty JPEGs are skipped and
  counted, never fatal.

The evidence service (`services/evidence`) wires these to Kafka and the frame store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from vigil.framestore import EVIDENCE_PREFIX, object_uri, safe_name, safe_segment

# COCO ids the traffic centre sees (the detectors' class ids); others are labelled by number.
CLASS_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
BOX_COLOR_BGR = (0, 0, 255)
MS = Fraction(1, 1000)  # clip time base: presentation times are capture milliseconds


class CorruptFrame(ValueError):
    """A stored frame that does not decode as an image (zero bytes, truncated, not a JPEG)."""


class NoFrames(ValueError):
    """Not one frame of a clip decoded."""


def evidence_uris(frame_store_uri: str, camera_id: str, incident_id: str) -> tuple[str, str]:
    """(snapshot_uri, clip_uri) of an incident in the frame store at `frame_store_uri` (VIGIL_FRAME_STORE)."""
    key = f"{EVIDENCE_PREFIX}/{safe_segment(camera_id)}/{safe_name(incident_id)}"
    return object_uri(frame_store_uri, key + ".jpg"), object_uri(frame_store_uri, key + ".mp4")


def clip_window(opened_ms: int, pre_roll_s: float, post_roll_s: float) -> tuple[int, int]:
    """Capture-time range [from_ms, to_ms] of an incident's clip."""
    return int(opened_ms - pre_roll_s * 1000), int(opened_ms + post_roll_s * 1000)


def label(class_id: int, track_id: int) -> str:
    name = CLASS_NAMES.get(int(class_id), f"class {int(class_id)}")
    return f"{name} #{int(track_id)}" if track_id >= 0 else name


def decode_jpeg(data: bytes | None) -> np.ndarray:
    """BGR pixels of an encoded frame; CorruptFrame when it does not decode."""
    if not data:
        raise CorruptFrame("empty frame")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise CorruptFrame(f"{len(data)} bytes that do not decode as an image")
    return pixels


def draw_snapshot(jpeg: bytes, boxes: np.ndarray | Sequence, labels: Sequence[str], quality: int = 90) -> bytes:
    """The frame with each box (xyxy pixels) outlined and labelled (e.g. 'car #12'), as JPEG. CorruptFrame when the
    frame does not decode."""
    image = decode_jpeg(jpeg)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(labels) != len(boxes):
        raise ValueError(f"{len(labels)} labels for {len(boxes)} boxes")
    height, width = image.shape[:2]
    thickness = max(2, round(min(height, width) / 240))
    scale = max(0.5, min(height, width) / 900)
    for (x1, y1, x2, y2), text in zip(boxes, labels):
        x1, x2 = (int(np.clip(v, 0, width - 1)) for v in (x1, x2))
        y1, y2 = (int(np.clip(v, 0, height - 1)) for v in (y1, y2))
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOR_BGR, thickness)
        if text:
            (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = y1 - text_h - baseline - 2 if y1 - text_h - baseline - 2 >= 0 else y1
            cv2.rectangle(image, (x1, top), (x1 + text_w + 4, top + text_h + baseline + 2), BOX_COLOR_BGR, cv2.FILLED)
            cv2.putText(image, text, (x1 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("the snapshot could not be JPEG-encoded")
    return encoded.tobytes()


@dataclass(frozen=True)
class Clip:
    data: bytes  # the MP4 file
    frames: int  # frames encoded
    skipped: int  # frames left out: corrupt or empty JPEGs, repeated capture times
    first_ts_ms: int  # capture time of the first and last encoded frame
    last_ts_ms: int
    duration_ms: int  # playback duration (the last frame lasts as long as the frame interval before it)
    codec: str


def h264_encoder() -> str:
    """The H.264 encoder PyAV's FFmpeg has: libx264 (PyAV's wheels bundle it), else openh264 or FFmpeg's own."""
    import av

    for name in ("libx264", "libopenh264", "h264"):
        try:
            if av.codec.Codec(name, "w"):
                return name
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
    raise RuntimeError("this FFmpeg (PyAV) has no H.264 encoder")


def write_clip(frames: Sequence[tuple[int, bytes]], crf: int = 23, preset: str = "veryfast",
               encoder: str | None = None) -> Clip:
    """Encode (capture_ts_ms, jpeg) frames into an H.264 MP4 with presentation times from the capture times.

    Frames are ordered by capture time; a corrupt or empty JPEG, or a capture time already taken, is skipped and
    counted (`Clip.skipped`). Frames whose size differs from the first one are scaled to it; odd sizes are cropped
    to even (yuv420p). NoFrames when nothing decodes."""
    import av

    decoded: list[tuple[int, np.ndarray]] = []
    skipped, seen = 0, set()
    for ts_ms, data in sorted(frames, key=lambda item: item[0]):
        try:
            pixels = decode_jpeg(data)
        except CorruptFrame:
            skipped += 1
            continue
        if int(ts_ms) in seen:
            skipped += 1
            continue
        seen.add(int(ts_ms))
        decoded.append((int(ts_ms), pixels))
    if not decoded:
        raise NoFrames(f"none of {len(frames)} frames decoded")

    height, width = (side - side % 2 for side in decoded[0][1].shape[:2])
    first_ts = decoded[0][0]
    intervals = np.diff([ts for ts, _ in decoded])
    last_duration = int(np.median(intervals)) if len(intervals) else 200
    average_fps = (len(decoded) - 1) * 1000 / max(1, decoded[-1][0] - first_ts) if len(decoded) > 1 else 5.0
    encoder = encoder or h264_encoder()
    # A temporary file rather than memory: faststart moves the index to the front after writing, reading the file back.
    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream(encoder, rate=Fraction(round(average_fps * 1000), 1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = MS
            stream.codec_context.time_base = MS
            if encoder == "libx264":
                stream.options = {"crf": str(crf), "preset": preset}
            for index, (ts_ms, pixels) in enumerate(decoded):
                if pixels.shape[:2] != (height, width):
                    if pixels.shape[0] - pixels.shape[0] % 2 == height and pixels.shape[1] - pixels.shape[1] % 2 == width:
                        pixels = pixels[:height, :width]
                    else:
                        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgr24")
                frame.pts = ts_ms - first_ts
                frame.time_base = MS
                frame.duration = (decoded[index + 1][0] - ts_ms) if index + 1 < len(decoded) else last_duration
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        with open(path, "rb") as written:
            data = written.read()
    finally:
        os.unlink(path)
    return Clip(data, len(decoded), skipped, first_ts, decoded[-1][0], decoded[-1][0] - first_ts + last_duration,
                encoder)
