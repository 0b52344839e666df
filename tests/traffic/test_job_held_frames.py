"""The traffic job's keyed function when a live camera's frames are held up on the way (Triton or infer down for
longer than the allowed lateness): its camera-status records keep moving event time while its detections wait, so
the minute's event-time timer fires before the minute's frames are in. Driven here directly, with the watermark
stepped by hand as Flink would step it, so the order of timers and late frames is exact."""

from __future__ import annotations

from pyflink.datastream import TimeDomain

from jobs.anomaly.synthetic import as_detection_batch
from jobs.traffic.job import Traffic, decode
from tests.traffic import synthetic
from vigil.avro_codec import AvroCodec
from tests.flink import ValueState

T0 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000




class Context:
    """Flink's context as the function sees it: timers it registers, the time domain of the one firing."""

    def __init__(self):
        self.event_timers, self.domain = set(), TimeDomain.EVENT_TIME
        outer = self

        class Timers:
            def register_event_time_timer(self, ts):
                outer.event_timers.add(ts)

            def register_processing_time_timer(self, ts):
                pass

            def current_processing_time(self):
                return 0

        self._timers = Timers()

    def timer_service(self):
        return self._timers

    def time_domain(self):
        return self.domain

    def get_current_key(self):
        return synthetic.CAMERA


def status(ts_ms: int) -> bytes:
    return AvroCodec().encode("CameraStatus", dict(
        status_id=f"{synthetic.CAMERA}:ONLINE:{ts_ms}", camera_id=synthetic.CAMERA, ts_ms=ts_ms, state="ONLINE",
        frames_decoded=0, frames_published=0, decode_errors=0, reconnects=0, actual_fps=0.0, message=None))


def run(records) -> list:
    """Feed (timestamp, bytes) in order; the watermark is the highest timestamp seen so far (monotonous)."""
    function, ctx, out, watermark = Traffic({synthetic.CAMERA: synthetic.road()}, bin_ms=60_000), Context(), [], 0
    function.engine_state, function.memory_state = ValueState(), ValueState()
    for ts, value in records:
        out += list(function.process_element(decode(value), ctx))
        watermark = max(watermark, ts)
        for timer in sorted(t for t in ctx.event_timers if t <= watermark):
            ctx.event_timers.discard(timer)
            out += list(function.on_timer(timer, ctx))
    return out


def held_up_stream():
    """Cars cross at ~8 s and ~50 s; the camera's detections from 40 s on arrive only after its ONLINE statuses up to
    90 s (Triton was down), then the rest."""
    points = synthetic.drive(1, 2, 50.0, T0 + 5_000) + synthetic.drive(2, 2, 50.0, T0 + 48_000)
    frames = [(f.ts_ms, as_detection_batch(f, synthetic.CAMERA)) for f in synthetic.frames(points, T0, T0 + 130_000)]
    statuses = [(T0 + s * 1000, status(T0 + s * 1000)) for s in range(1, 131, 2)]
    early = sorted([f for f in frames if f[0] < T0 + 40_000] + [s for s in statuses if s[0] < T0 + 90_000],
                   key=lambda r: r[0])
    return early + [f for f in frames if f[0] >= T0 + 40_000] + [s for s in statuses if s[0] >= T0 + 90_000]


def test_the_minute_waits_for_a_live_cameras_held_up_frames():
    out = run(held_up_stream())
    passages = sorted(r["track_id"] for kind, r in out if kind == "VehiclePassage")
    bins = {(r["lane"], r["bin_start_ms"]): r for kind, r in out if kind == "TrafficBin"}
    assert passages == [1, 2], "the car crossing while its detections were held up is counted"
    assert bins[("lane1", T0)]["volume"] == 2 and bins[("lane1", T0)]["status"] == "ok"
    assert len([b for b in bins if b[1] == T0]) == len({b[0] for b in bins}), "one bin per lane for minute 0"


def test_a_camera_that_says_nothing_after_the_minute_does_not_hold_it():
    """No status after the minute (ingest itself gone, or a stream that stopped reporting): the minute closes on time
    with what it had, as before."""
    points = synthetic.drive(1, 2, 50.0, T0 + 5_000)
    frames = [(f.ts_ms, as_detection_batch(f, synthetic.CAMERA)) for f in synthetic.frames(points, T0, T0 + 40_000)]
    other = [(T0 + 75_000, status(T0 + 30_000))]  # a late-arriving record moves the watermark; its status is old
    out = run(sorted(frames + [(T0 + 1_000, status(T0 + 1_000))], key=lambda r: r[0]) + other)
    bins = {(r["lane"], r["bin_start_ms"]): r for kind, r in out if kind == "TrafficBin"}
    assert bins[("lane1", T0)]["volume"] == 1
