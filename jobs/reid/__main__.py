"""Run the re-ID job against Kafka: `python -m jobs.reid --cameras cameras.yaml --checkpoint-dir DIR`.

Reads `tracks.v1` with the official KafkaSource (committed offsets, checkpoints every 2 s), writes ReidMatch records
to `events.v1` with KafkaSink (at-least-once; match ids are deterministic so replays de-duplicate downstream), and
dead-letters undecodable input. The camera file's `site` per camera and `links` (topology with transit bounds) gate
the matching. `--restore latest` resumes from the newest retained checkpoint in --checkpoint-dir.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import Field
from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.reid.job import BYTES, PICKLED, build_pipeline, decode_summary, encode_match
from jobs.reid.matching import MatchConfig
from vigil.cameras import load_cameras
from vigil.config import Settings
from vigil.flink_env import dead_letter_route, job_arguments, job_environment, kafka_sink, kafka_source
from vigil.topics import EVENTS, TRACKS


class ReidJobSettings(Settings):
    reid_window_ms: int = Field(120_000, ge=1000, description="Sliding window size: at least the longest transit "
                                "plus the periodic track-summary interval.")
    reid_slide_ms: int = Field(5_000, ge=100, description="How often each window decides (latency vs. work).")
    reid_out_of_orderness_ms: int = Field(10_000, ge=0, description="Watermark bound: final summaries arrive a few "
                                          "seconds after their track's last_seen.")
    reid_idle_flush_ms: int = Field(15_000, ge=0, description="A site without a new track summary this long "
                                    "(processing time: streams ended, cameras offline, night) is decided at once "
                                    "instead of waiting for event time to close its windows (0: never).")
    reid_min_similarity: float = Field(0.7, ge=-1, le=1, description="Cosine similarity below which tracks never match.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil reid-job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job_arguments(parser, "vigil-reid", "camera config with sites and links")
    args = parser.parse_args(argv)
    settings = ReidJobSettings()
    topology = load_cameras(args.cameras).topology()
    if not topology.links:
        print(f"{args.cameras} has no `links`: the re-ID job needs the camera topology (see README)", file=sys.stderr)
        return 2
    env = job_environment(settings, args)
    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(settings.reid_out_of_orderness_ms))
                  .with_idleness(Duration.of_seconds(5)))
    raw = env.from_source(kafka_source(settings, [TRACKS], args.group), watermarks, TRACKS.name)
    decoded = raw.map(decode_summary, output_type=PICKLED)
    dead_letter_route(decoded, settings, TRACKS, "reid-job")
    matches = build_pipeline(decoded, topology, settings.reid_window_ms,
                             settings.reid_slide_ms, MatchConfig(min_similarity=settings.reid_min_similarity),
                             idle_flush_ms=settings.reid_idle_flush_ms)
    matches.map(encode_match, output_type=Types.ROW([BYTES, BYTES])).sink_to(kafka_sink(settings, EVENTS))
    env.execute("vigil-reid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
