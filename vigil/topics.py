"""Every Kafka topic of the platform, once: its record types, key, partition count and retention.

Producers, decoders, the sink's outputs, the Flink sources and sinks and `ensure_topics` all take their topics from
here, so a topic's name never appears as a string literal anywhere else. Adding a topic is one `Topic(...)` line in
`TOPICS`; the README's topic table is generated from it (`python -m vigil.topics`, checked by a test).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.config import Settings

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Topic:
    name: str  # logical name; deployed as `<VIGIL_TOPIC_NAMESPACE><name>`
    records: tuple[str, ...]  # Avro record types (schemas/<Name>.avsc) the topic may carry
    key: str  # what the message key holds; a key keeps one camera's (or identity's) messages in order
    partitions: int  # default; `VIGIL_KAFKA_TOPICS` overrides per deployment
    retention_ms: int
    doc: str

    def deployed(self, settings: Settings) -> str:
        """The topic's name in this deployment ('frames.v1' → '<namespace>frames.v1')."""
        return settings.topic(self.name)

    def partitions_in(self, settings: Settings) -> int:
        return int(settings.kafka_topics.get(self.name, self.partitions))

    def carries(self, record_type: str) -> bool:
        return record_type in self.records


FRAMES = Topic("frames.v1", ("FrameRef",), "camera_id", 4, DAY_MS,
               "One reference per sampled frame; the pixels are in the frame store.")
DETECTIONS = Topic("detections.v1", ("DetectionBatch",), "camera_id", 4, 7 * DAY_MS,
                   "One frame's tracked detections, as arrays; record time = capture time.")
TRACKS = Topic("tracks.v1", ("TrackSummary", "TrackProgress"), "camera_id", 2, 7 * DAY_MS,
               "Track summaries with appearance embeddings, and heartbeats that advance the re-ID job's event time.")
CAMERA_STATUS = Topic("camera-status.v1", ("CameraStatus",), "camera_id", 1, 7 * DAY_MS,
                      "Camera health on every change and periodically.")
EVENTS = Topic("events.v1", ("AnomalyEvent", "ReidMatch"), "camera_id (AnomalyEvent), global_id (ReidMatch)", 2,
               30 * DAY_MS, "Results of the Flink jobs: anomalies and cross-camera matches.")
TRAFFIC = Topic("traffic.v1", ("TrafficBin", "VehiclePassage"), "camera_id", 2, 30 * DAY_MS,
                "Per-lane traffic data every minute, and every vehicle passage over a count line.")
INCIDENTS = Topic("incidents.v1", ("Incident", "IncidentVerdict"), "camera_id", 2, 90 * DAY_MS,
                  "Incidents (one per real-world event, every revision) and operators' verdicts on them.")
DEADLETTER = Topic("deadletter.v1", ("DeadLetter",), "the failed message's key, or the service", 1, 30 * DAY_MS,
                   "Messages a service could not process, unchanged, with the reason.")

TOPICS: dict[str, Topic] = {t.name: t for t in (FRAMES, DETECTIONS, TRACKS, CAMERA_STATUS, EVENTS, TRAFFIC, INCIDENTS,
                                              DEADLETTER)}


def topic(name: str) -> Topic:
    """The registered topic of a logical name, with a clear error for an unknown one."""
    try:
        return TOPICS[name]
    except KeyError:
        raise ValueError(f"unknown topic {name!r}; known: {sorted(TOPICS)}") from None


def default_partitions() -> dict[str, int]:
    return {t.name: t.partitions for t in TOPICS.values()}


def markdown_table() -> str:
    """The README's topic table."""
    lines = ["| topic | record types | key | partitions | retention | what it carries |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in TOPICS.values():
        retention = f"{t.retention_ms // DAY_MS} d" if t.retention_ms % DAY_MS == 0 else f"{t.retention_ms // HOUR_MS} h"
        lines.append(f"| `{t.name}` | {', '.join(t.records)} | {t.key} | {t.partitions} | {retention} | {t.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
