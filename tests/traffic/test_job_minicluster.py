"""The traffic job's topology on the PyFlink MiniCluster (from_collection, event time): passages as vehicles cross
the count lines, one bin per lane and minute when event time passes its end, and a camera that went offline reported
as offline, not as an empty road."""

import pytest
from pyflink.common import Duration, Types, WatermarkStrategy

from jobs.anomaly.synthetic import as_detection_batch
from jobs.traffic.job import BYTES, PICKLED, build_pipeline, decode
from tests.flink import RecordTime
from tests.traffic import synthetic
from vigil.avro_codec import AvroCodec
from vigil.config import Settings
from vigil.flink_env import make_env

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_os_environ")]
T0 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000  # a minute boundary






def status(ts_ms: int, state: str) -> bytes:
    return AvroCodec().encode("CameraStatus", dict(
        status_id=f"{synthetic.CAMERA}:{state}:{ts_ms}", camera_id=synthetic.CAMERA, ts_ms=ts_ms, state=state,
        frames_decoded=0, frames_published=0, decode_errors=0, reconnects=0, actual_fps=0.0, message=None))


def test_passages_and_bins_with_camera_health(tmp_path):
    # minute 0: three cars in lane 1 at 50 km/h, one truck in lane 2; minute 1: nothing; minute 2: camera offline
    points = (synthetic.drive(1, 2, 50.0, T0 + 5_000) + synthetic.drive(2, 2, 50.0, T0 + 20_000)
              + synthetic.drive(3, 2, 50.0, T0 + 35_000) + synthetic.drive(4, 7, 40.0, T0 + 10_000, x_m=5.25))
    frames = synthetic.frames(points, T0, T0 + 120_000)
    records = [(f.ts_ms, as_detection_batch(f, synthetic.CAMERA)) for f in frames]
    records += [(T0 + 1_000, status(T0 + 1_000, "ONLINE")), (T0 + 121_000, status(T0 + 121_000, "OFFLINE")),
                (T0 + 200_000, status(T0 + 200_000, "OFFLINE")), (T0 + 241_000, status(T0 + 241_000, "OFFLINE"))]
    records.append((T0 + 2_000, b"\x00\x01 not avro"))
    records.sort(key=lambda r: r[0])
    env = make_env(Settings(data_dir=tmp_path))
    stream = env.from_collection(records, type_info=Types.TUPLE([Types.LONG(), BYTES])).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(1500)).with_timestamp_assigner(RecordTime()))
    decoded = stream.map(lambda record: decode(record[1]), output_type=PICKLED)
    out = build_pipeline(decoded, {synthetic.CAMERA: synthetic.road()}, bin_ms=60_000)
    with out.execute_and_collect() as results:
        results = list(results)
    passages = [r for kind, r in results if kind == "VehiclePassage"]
    bins = {(r["lane"], r["bin_start_ms"]): r for kind, r in results if kind == "TrafficBin"}

    assert sorted((p["lane"], p["track_id"]) for p in passages) == [("lane1", 1), ("lane1", 2), ("lane1", 3), ("lane2", 4)]
    assert all(abs(p["speed_kmh"] - (40.0 if p["track_id"] == 4 else 50.0)) <= 2.0 for p in passages)
    first = bins[("lane1", T0)]
    assert first["volume"] == 3 and first["volume_by_class"]["car"] == 3 and first["status"] == "ok"
    assert abs(first["mean_speed_kmh"] - 50.0) <= 2.0
    assert bins[("lane2", T0)]["volume_by_class"]["truck"] == 1
    assert bins[("lane1", T0 + 60_000)]["status"] == "no_activity" and bins[("lane1", T0 + 60_000)]["volume"] == 0
    offline = bins[("lane1", T0 + 180_000)]
    assert offline["status"] == "camera_offline" and offline["volume"] == 0 and offline["frames"] == 0
    assert len({r["bin_id"] for r in bins.values()}) == len(bins)

