"""Avro records → ClickHouse rows, one small function per table. Pure, so they are tested without Kafka."""

from __future__ import annotations

import datetime
import zlib
from collections.abc import Callable
from dataclasses import dataclass

UTC = datetime.timezone.utc


def ts(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=UTC)


FRAME_COLUMNS = ["frame_id", "camera_id", "capture_ts", "sequence", "width", "height", "encoding", "uri", "ingest_ts"]


def frame_row(r: dict) -> list:
    return [r["frame_id"], r["camera_id"], ts(r["capture_ts_ms"]), r["sequence"], r["width"], r["height"],
            r["encoding"], r["uri"], ts(r["ingest_ts_ms"])]


DETECTION_COLUMNS = ["frame_id", "camera_id", "capture_ts", "sequence", "ingest_ts", "inference_ts", "model_name",
                     "model_version", "x1", "y1", "x2", "y2", "class_id", "confidence", "track_id"]


def detection_row(r: dict) -> list:
    frame, boxes = r["frame"], r["xyxy"]
    return [frame["frame_id"], frame["camera_id"], ts(frame["capture_ts_ms"]), frame["sequence"],
            ts(frame["ingest_ts_ms"]), ts(r["inference_ts_ms"]), r["model_name"], r["model_version"],
            boxes[0::4], boxes[1::4], boxes[2::4], boxes[3::4], r["class_id"], r["confidence"], r["track_id"]]


STATUS_COLUMNS = ["status_id", "camera_id", "ts", "state", "frames_decoded", "frames_published", "decode_errors",
                  "reconnects", "actual_fps", "message"]


def status_row(r: dict) -> list:
    return [r["status_id"], r["camera_id"], ts(r["ts_ms"]), r["state"], r["frames_decoded"], r["frames_published"],
            r["decode_errors"], r["reconnects"], r["actual_fps"], r["message"]]


DEAD_LETTER_COLUMNS = ["source_topic", "source_partition", "source_offset", "service", "reason", "value_size", "ts"]


def dead_letter_row(r: dict) -> list:
    # A Flink job does not see the partition and offset of what it dead-letters (it sends -1): the row then keys on a
    # checksum of the message instead, so distinct bad messages stay distinct rows (and the unsigned columns hold it).
    partition, offset = r["source_partition"], r["source_offset"]
    if partition < 0 or offset < 0:
        partition, offset = 0, zlib.crc32(r["value"] or b"") | (1 << 32)
    return [r["source_topic"], partition, offset, r["service"], r["reason"], len(r["value"] or b""), ts(r["ts_ms"])]


ANOMALY_COLUMNS = ["event_id", "camera_id", "kind", "window_start", "window_end", "score", "threshold", "track_ids",
                   "zone", "top_cells", "model_version", "emitted_ts"]


def anomaly_row(r: dict) -> list:
    return [r["event_id"], r["camera_id"], r["kind"], ts(r["window_start_ms"]), ts(r["window_end_ms"]), r["score"],
            r["threshold"], r["track_ids"], r["zone"], r["top_cells"], r["model_version"], ts(r["emitted_ts_ms"])]


TRACK_SUMMARY_COLUMNS = ["camera_id", "track_id", "sequence", "final", "class_id", "first_seen", "last_seen",
                         "detections", "entry_x", "entry_y", "exit_x", "exit_y", "embedding", "embedding_samples",
                         "embedder", "best_crop_uri", "emitted_ts"]


def track_summary_row(r: dict) -> list:
    return [r["camera_id"], r["track_id"], r["sequence"], r["final"], r["class_id"], ts(r["first_seen_ms"]),
            ts(r["last_seen_ms"]), r["detections"], *r["entry_xy"][:2], *r["exit_xy"][:2], r["embedding"],
            r["embedding_samples"], r["embedder"], r["best_crop_uri"], ts(r["emitted_ts_ms"])]


REID_MATCH_COLUMNS = ["match_id", "global_id", "class_id", "from_camera_id", "from_track_id", "from_last_seen",
                      "to_camera_id", "to_track_id", "to_first_seen", "similarity", "embedder", "emitted_ts"]


def reid_match_row(r: dict) -> list:
    return [r["match_id"], r["global_id"], r["class_id"], r["from_camera_id"], r["from_track_id"],
            ts(r["from_last_seen_ms"]), r["to_camera_id"], r["to_track_id"], ts(r["to_first_seen_ms"]),
            r["similarity"], r["embedder"], ts(r["emitted_ts_ms"])]


TRAFFIC_BIN_COLUMNS = ["bin_id", "camera_id", "lane", "lane_number", "bin_start", "bin_end", "volume_by_class", "volume",
                       "volume_positive", "volume_negative", "mean_speed_kmh", "p85_speed_kmh", "occupancy_pct",
                       "mean_headway_s", "mean_gap_s", "status", "speed_available", "traffic_state", "free_flow_kmh",
                       "frames", "emitted_ts"]


def traffic_bin_row(r: dict) -> list:
    return [r["bin_id"], r["camera_id"], r["lane"], r["lane_number"], ts(r["bin_start_ms"]), ts(r["bin_end_ms"]),
            dict(r["volume_by_class"]), r["volume"], r["volume_positive"], r["volume_negative"], r["mean_speed_kmh"],
            r["p85_speed_kmh"], r["occupancy_pct"], r["mean_headway_s"], r["mean_gap_s"], r["status"],
            r["speed_available"], r["traffic_state"], r["free_flow_kmh"], r["frames"], ts(r["emitted_ts_ms"])]


PASSAGE_COLUMNS = ["passage_id", "camera_id", "lane", "lane_number", "line", "track_id", "class_id", "direction", "ts",
                   "speed_kmh", "emitted_ts"]


def passage_row(r: dict) -> list:
    return [r["passage_id"], r["camera_id"], r["lane"], r["lane_number"], r["line"], r["track_id"], r["class_id"],
            r["direction"], ts(r["ts_ms"]), r["speed_kmh"], ts(r["emitted_ts_ms"])]


INCIDENT_COLUMNS = ["incident_id", "revision", "camera_id", "kind", "state", "severity", "zones", "track_ids",
                    "event_ids", "opened", "updated", "cleared", "score", "threshold", "snapshot_uri", "clip_uri",
                    "detection_suspended", "emitted_ts"]


def incident_row(r: dict) -> list:
    return [r["incident_id"], r["revision"], r["camera_id"], r["kind"], r["state"], r["severity"], r["zones"],
            r["track_ids"], r["event_ids"], ts(r["opened_ms"]), ts(r["updated_ms"]),
            None if r["cleared_ms"] is None else ts(r["cleared_ms"]), r["score"], r["threshold"], r["snapshot_uri"],
            r["clip_uri"], r["detection_suspended"], ts(r["emitted_ts_ms"])]


VERDICT_COLUMNS = ["verdict_id", "incident_id", "camera_id", "kind", "zones", "verdict", "reason", "actor", "decided"]


def verdict_row(r: dict) -> list:
    return [r["verdict_id"], r["incident_id"], r["camera_id"], r["kind"], r["zones"], r["verdict"], r["reason"],
            r["actor"], ts(r["decided_ms"])]


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]
    row: Callable[[dict], list]


# record type -> the table that stores it. A record type is stored in one table whichever topic carries it.
TABLES: dict[str, Table] = {
    "FrameRef": Table("frames", FRAME_COLUMNS, frame_row),
    "DetectionBatch": Table("detections", DETECTION_COLUMNS, detection_row),
    "CameraStatus": Table("camera_status", STATUS_COLUMNS, status_row),
    "DeadLetter": Table("dead_letters", DEAD_LETTER_COLUMNS, dead_letter_row),
    "TrackSummary": Table("track_summaries", TRACK_SUMMARY_COLUMNS, track_summary_row),
    "AnomalyEvent": Table("anomalies", ANOMALY_COLUMNS, anomaly_row),
    "ReidMatch": Table("reid_matches", REID_MATCH_COLUMNS, reid_match_row),
    "TrafficBin": Table("traffic_bins", TRAFFIC_BIN_COLUMNS, traffic_bin_row),
    "VehiclePassage": Table("vehicle_passages", PASSAGE_COLUMNS, passage_row),
    "Incident": Table("incidents", INCIDENT_COLUMNS, incident_row),
    "IncidentVerdict": Table("incident_verdicts", VERDICT_COLUMNS, verdict_row),
}

# Record types that travel on a stored topic but are deliberately not stored (heartbeats).
NOT_STORED = {"TrackProgress"}
