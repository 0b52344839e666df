"""The re-ID job's topology on the PyFlink MiniCluster (from_collection, event time, sliding windows): matches follow
the camera topology one-to-one, and a global identity persists in keyed state across windows that never share a
track."""

import pytest
from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.reid.job import BYTES, PICKLED, build_pipeline, decode_summary
from jobs.reid.matching import MatchConfig
from jobs.reid.synthetic import appearance, observed, summary
from tests.flink import RecordTime
from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.flink_env import make_env
from vigil.topology import Link, Topology

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_os_environ")]

T0 = 1_700_000_000_000


def test_job_matches_across_cameras_and_keeps_identities_across_windows(tmp_path):
    codec = AvroCodec()
    topology = Topology([Link("a", "b", 0, 30), Link("b", "c", 0, 120)], {"a": "s1", "b": "s1", "c": "s1"})
    records = []
    for i in range(4):
        person, t = appearance(i), T0 + i * 15_000
        records += [summary("a", 10 + i, t, t + 5_000, observed(person, 0.05, 1)),
                    summary("b", 20 + i, t + 15_000, t + 25_000, observed(person, 0.05, 2))]
        # camera c sees them 20 s after b, ending 70 s after they left a: never in a 60 s window with their a track
        records.append(summary("c", 30 + i, t + 45_000, t + 75_000, observed(person, 0.05, 3)))
    records.append(summary("c", 99, T0 + 60_000, T0 + 70_000, appearance(99)))  # a stranger on c
    records.sort(key=lambda r: r["last_seen_ms"])
    rows = [(r["last_seen_ms"], codec.encode("TrackSummary", r)) for r in records]
    env = make_env(Settings(data_dir=tmp_path))
    stream = env.from_collection(rows, type_info=Types.TUPLE([Types.LONG(), BYTES])).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(1000)).with_timestamp_assigner(RecordTime()))
    decoded = stream.map(lambda row: decode_summary(row[1]), output_type=PICKLED)
    matches = build_pipeline(decoded, topology, window_ms=60_000, slide_ms=5_000, config=MatchConfig(min_similarity=0.6))
    with matches.execute_and_collect() as results:
        out = list(results)
    latest = {}
    for record in out:
        latest[record["match_id"]] = record
    assert set(latest) == {f"a:{10 + i}->b:{20 + i}" for i in range(4)} | {f"b:{20 + i}->c:{30 + i}" for i in range(4)}
    for i in range(4):
        assert latest[f"b:{20 + i}->c:{30 + i}"]["global_id"] == f"a:{10 + i}", "identity carried across windows"
    assert len(out) == len(latest), "overlapping windows emit each match once"
