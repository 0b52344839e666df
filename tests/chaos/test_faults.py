"""The reduced fault suite (load/chaos.py): one stream of the car footage through the real path on a private stack
with the durable broker; the broker, then infer, then the sink are SIGKILLed mid-stream and restarted. Every frame
published on frames.v1 ends up in ClickHouse with its detection row, nothing is doubled after FINAL, and the path
recovers by itself after each kill."""

import pytest

from load.chaos import run

pytestmark = pytest.mark.slow  # starts real servers


def test_broker_infer_and_sink_killed_mid_stream_lose_and_double_nothing(tmp_path):
    result = run(tmp_path / "chaos", [(5.0, "broker"), (11.0, "infer"), (17.0, "sink")], log=lambda *_: None)
    assert result["published"] >= 150, result  # 30 s of footage sampled at 5 fps: the stream got through
    assert result["published_without_detections"] == 0, result
    assert result["frames"] == result["published"] == result["detection_frames"], result
    assert result["detections"] == result["detection_frames"] and result["frames_doubled"] == 0, result
    assert result["summaries_doubled"] == 0, result
    assert set(result["recovery_s"]) == {"broker", "infer", "sink"}, result
