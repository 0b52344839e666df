"""Run the traffic-data job against Kafka: `python -m jobs.traffic --cameras cameras.yaml --checkpoint-dir DIR`.

Reads `detections.v1` and `camera-status.v1` with the official KafkaSource (committed offsets, checkpoints every 2 s),
writes VehiclePassage and TrafficBin records to `traffic.v1` with KafkaSink (at-least-once; ids are deterministic so
replays de-duplicate downstream), and dead-letters undecodable input. Cameras without a `traffic:` block in the
camera file are ignored. `--restore latest` resumes from the newest retained checkpoint in --checkpoint-dir.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import Field
from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.traffic.job import BYTES, PICKLED, build_pipeline, decode, encode
from vigil.cameras import CameraConfigError, load_cameras
from vigil.config import Settings
from vigil.flink_env import dead_letter_route, job_arguments, job_environment, kafka_sink, kafka_source
from vigil.topics import CAMERA_STATUS, DETECTIONS, TRAFFIC


class TrafficJobSettings(Settings):
    traffic_bin_ms: int = Field(60_000, ge=1000, description="Length of a traffic-data bin (ms).")
    traffic_out_of_orderness_ms: int = Field(1500, ge=0, description="Watermark bound for detections and statuses.")
    traffic_allowed_lateness_ms: int = Field(10_000, ge=0, description="A bin closes this long after event time "
                                             "passed its end: frames of a lagging partition still count.")
    traffic_ended_grace_ms: int = Field(10_000, ge=0, description="After a camera's stream ended, close its open bins "
                                        "this long later (processing time).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil traffic-job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job_arguments(parser, "vigil-traffic", "camera config with `traffic:` geometry")
    args = parser.parse_args(argv)
    settings = TrafficJobSettings()
    try:
        cameras = load_cameras(args.cameras).cameras
    except CameraConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    geometry = {c.id: c.traffic for c in cameras if c.traffic is not None}
    if not geometry:
        print(f"error: no camera in {args.cameras} has a `traffic:` block (lanes, count lines; see README)", file=sys.stderr)
        return 2
    env = job_environment(settings, args)
    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(settings.traffic_out_of_orderness_ms))
                  .with_idleness(Duration.of_seconds(5)))
    raw = env.from_source(kafka_source(settings, [DETECTIONS, CAMERA_STATUS], args.group), watermarks, "detections+status")
    decoded = raw.map(decode, output_type=PICKLED)
    dead_letter_route(decoded, settings, DETECTIONS, "traffic-job")
    records = build_pipeline(decoded, geometry, settings.traffic_bin_ms, settings.traffic_ended_grace_ms,
                             settings.traffic_allowed_lateness_ms)
    records.map(encode, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, TRAFFIC))
    env.execute("vigil-traffic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
