"""Run the anomaly job against Kafka: `python -m jobs.anomaly --cameras cameras.yaml --checkpoint-dir DIR`.

Reads `detections.v1` with the official KafkaSource (committed offsets, checkpoints every 2 s), writes AnomalyEvents
to `events.v1` with KafkaSink (at-least-once; event ids are deterministic so replays de-duplicate downstream), and
dead-letters undecodable input. `--restore latest` resumes from the newest retained checkpoint in --checkpoint-dir.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyflink.common import Duration, Row, Types, WatermarkStrategy

from jobs.anomaly.job import BYTES, PICKLED, build_pipeline, decode_detections, encode_event
from jobs.anomaly.rules import RuleConfig
from services.anomaly.train import AnomalySettings
from vigil.flink_env import kafka_sink, kafka_source, make_env


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    """Newest completed checkpoint (a chk-N folder with _metadata) under any job id in checkpoint_dir."""
    done = [p for p in Path(checkpoint_dir).glob("*/chk-*") if (p / "_metadata").exists()]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1]))).resolve().as_uri()


def dead_letter_row(value) -> Row:
    from vigil.avro_codec import AvroCodec

    _, reason, raw = value
    record = dict(source_topic="detections.v1", source_partition=-1, source_offset=-1, service="anomaly-job",
                  reason=reason, key=None, value=raw, ts_ms=time.time_ns() // 1_000_000)
    return Row(b"anomaly-job", AvroCodec().encode("DeadLetter", record))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil anomaly-job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=Path, help="camera config with zones for the rules")
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--restore", default="none", help="'latest', 'none' or a checkpoint/savepoint URI")
    parser.add_argument("--group", default="vigil-anomaly")
    args = parser.parse_args(argv)
    settings = AnomalySettings()
    zones = {}
    if args.cameras:
        from services.ingest.cameras import load_cameras

        zones = {c.id: [z.model_dump() for z in c.zones] for c in load_cameras(args.cameras).cameras}
    restore = latest_checkpoint(args.checkpoint_dir) if args.restore == "latest" else (None if args.restore == "none" else args.restore)
    print(f"restoring from {restore}" if restore else "starting without restored state", flush=True)
    env = make_env(settings, checkpoint_dir=args.checkpoint_dir, restore_from=restore)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(1500)).with_idleness(Duration.of_seconds(5))
    raw = env.from_source(kafka_source(settings, [settings.topic("detections.v1")], args.group), watermarks, "detections.v1")
    decoded = raw.map(decode_detections, output_type=PICKLED)
    frames = decoded.filter(lambda value: value[0] is not None)
    decoded.filter(lambda value: value[0] is None).map(dead_letter_row, output_type=Types.ROW([BYTES, BYTES])) \
        .sink_to(kafka_sink(settings, settings.topic("deadletter.v1")))
    events = build_pipeline(frames, zones, str(settings.registry_root), settings.anomaly_window_ms, RuleConfig())
    events.map(encode_event, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, settings.topic("events.v1")))
    env.execute("vigil-anomaly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
