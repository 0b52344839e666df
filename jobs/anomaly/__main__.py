"""Run the anomaly job against Kafka: `python -m jobs.anomaly --cameras cameras.yaml --checkpoint-dir DIR`.

Reads `detections.v1` with the official KafkaSource (committed offsets, checkpoints every 2 s), writes AnomalyEvents
to `events.v1` and the incidents they make to `incidents.v1` with KafkaSink (at-least-once; event ids are deterministic so replays de-duplicate downstream), and
dead-letters undecodable input. `--restore latest` resumes from the newest retained checkpoint in --checkpoint-dir.
The camera file gives each camera's zones and rule settings (`rules:` on a camera or a zone); bad settings stop the
job at start-up with a message naming the camera, zone and rule.
"""

from __future__ import annotations

import argparse
import sys

from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.anomaly.incidents import IncidentSettings
from jobs.anomaly.job import (BYTES, PICKLED, build_pipeline, decode_detections, encode_event, encode_incident,
                             rule_engines)
from jobs.anomaly.rules import RuleSettingsError
from vigil.cameras import CameraConfigError, load_cameras
from vigil.flink_env import dead_letter_route, job_arguments, job_environment, kafka_sink, kafka_source
from vigil.model_registry import AnomalySettings
from vigil.topics import DETECTIONS, EVENTS, INCIDENTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil anomaly-job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job_arguments(parser, "vigil-anomaly", "camera config with zones and rule settings for the rules",
                  cameras_required=False)
    args = parser.parse_args(argv)
    settings = AnomalySettings()
    zones, rules = {}, {}
    if args.cameras:
        try:
            cameras = load_cameras(args.cameras).cameras
            zones, rules = {c.id: c.zones for c in cameras}, {c.id: c.rules for c in cameras}
            rule_engines(zones, rules)  # check the rule settings before starting Flink
        except (CameraConfigError, RuleSettingsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    env = job_environment(settings, args)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(1500)).with_idleness(Duration.of_seconds(5))
    raw = env.from_source(kafka_source(settings, [DETECTIONS], args.group), watermarks, DETECTIONS.name)
    decoded = raw.map(decode_detections, output_type=PICKLED)
    frames = decoded.filter(lambda value: value[0] is not None)
    dead_letter_route(decoded, settings, DETECTIONS, "anomaly-job")
    events, incidents = build_pipeline(frames, zones, str(settings.registry_root), settings.anomaly_window_ms, rules,
                                       incidents=IncidentSettings(merge_gap_s=settings.incident_merge_gap_s,
                                                                   clear_after_s=settings.incident_clear_after_s,
                                                                   quiet_clear_s=settings.incident_quiet_clear_s),
                                       frame_store_uri=settings.frame_store_uri)
    events.map(encode_event, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, EVENTS))
    incidents.map(encode_incident, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, INCIDENTS))
    env.execute("vigil-anomaly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
