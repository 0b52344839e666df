"""One camera's traffic counting: frames in, vehicle passages out as they happen, one traffic bin per lane and bin.

`TrafficEngine` is the whole of the traffic job's logic; the Flink operator keeps one per camera in keyed state
(it pickles), calls `observe` for every frame and `close_bin` when the watermark passes a bin's end. Each frame's
vehicle anchors (bottom centre: where a vehicle touches the road) go through the count lines, the calibration and
the detection zones as arrays. Persons are ignored; vehicles are COCO bicycle, car, motorcycle, bus and truck.

Measurements are accumulated per bin, keyed by the bin's start, and `close_bin` pops its bin: a frame arriving out
of order (inside the job's watermark bound) still lands in the bin of its own capture time, a passage in the bin of
its interpolated crossing time. Anything for a bin that was already closed is dropped (a passage whose crossing
falls in a closed bin is counted in the frame's bin). Trajectories only go forward: a frame older than the last one
is counted as observed but moves no track. A track crossing two count lines of one lane is one vehicle of the lane's
volume (each line still reports its passage). Tracks unseen for 30 s are forgotten.

A bin's `status` follows NTCIP 1209's sampleZoneStatus in spirit: the camera's health first (`camera_offline`,
`camera_degraded`), then `no_data` (no frame in the bin), `no_activity` (frames, but no vehicle on the lane), `ok`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from jobs.traffic.crossing import HYSTERESIS_PX, Crossing, LineCounter
from jobs.traffic.occupancy import MAX_FRAME_GAP_MS, OccupancyTally, ZoneOccupancy, split_by_bins
from jobs.traffic.speed import TrackSpeeds
from jobs.traffic.state import FreeFlowSpeed, classify
from vigil.detections import DetectionFrame, Position
from vigil.geometry import Lane, TrafficGeometry

CLASS_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
VEHICLE_CLASSES = (1, 2, 3, 5, 7)
ANCHOR = Position.BOTTOM_CENTER
BIN_MS = 60_000
FORGET_AFTER_MS = 30_000
FORGET_EVERY_MS = 1_000  # how often forgotten tracks are swept
CAMERA_STATUS = {"OFFLINE": "camera_offline", "ENDED": "camera_offline", "DEGRADED": "camera_degraded"}


@dataclass
class _LaneBin:
    volume_by_class: Counter = field(default_factory=Counter)
    volume_positive: int = 0
    volume_negative: int = 0
    speeds_kmh: list[float] = field(default_factory=list)
    vehicle_frames: int = 0  # frames with a vehicle in the lane's polygon
    zones: OccupancyTally = field(default_factory=OccupancyTally)  # the lane's detection zones together


@dataclass
class _Bin:
    frames: int = 0
    lanes: dict[str, _LaneBin] = field(default_factory=dict)

    def lane(self, name: str) -> _LaneBin:
        return self.lanes.setdefault(name, _LaneBin())


class TrafficEngine:
    """Traffic counting for one camera. `geometry` None: frames are counted, nothing else (no lanes, no bins)."""

    def __init__(self, camera_id: str, geometry: TrafficGeometry | None, bin_ms: int = BIN_MS,
                 hysteresis_px: float = HYSTERESIS_PX, max_frame_gap_ms: int = MAX_FRAME_GAP_MS,
                 forget_after_ms: int = FORGET_AFTER_MS):
        if bin_ms <= 0:
            raise ValueError(f"bin_ms must be positive, got {bin_ms}")
        self.camera_id, self.geometry, self.bin_ms, self.forget_after_ms = camera_id, geometry, bin_ms, forget_after_ms
        lanes = geometry.lanes if geometry else []
        self.geometry_lines = {line.name: line for line in (geometry.count_lines if geometry else [])}
        self.counters = [LineCounter(line, hysteresis_px) for line in self.geometry_lines.values()]
        self.zones = [ZoneOccupancy(zone, max_frame_gap_ms) for zone in (geometry.detection_zones if geometry else [])]
        self.speeds = TrackSpeeds(geometry.calibration if geometry else None)
        self.free_flow = {lane.name: FreeFlowSpeed(lane.free_flow_kmh) for lane in lanes}
        self.bins: dict[int, _Bin] = {}  # bin start -> what was measured in it
        self.closed_before_ms: int | None = None  # bins starting before this were closed
        self.last_ts_ms: int | None = None
        self.last_swept_ms: int | None = None
        self.lane_vehicles: dict[str, dict[int, int]] = {lane.name: {} for lane in lanes}  # counted track -> ts

    def bin_start(self, ts_ms: int) -> int:
        """Start of the bin holding `ts_ms` (bins are aligned to the epoch)."""
        return int(ts_ms) - int(ts_ms) % self.bin_ms

    def open_bins(self) -> list[int]:
        """Starts of the bins holding measurements not yet closed."""
        return sorted(self.bins)

    def _bin(self, bin_start_ms: int) -> _Bin | None:
        """The accumulator of an open bin; None when that bin was closed already."""
        if self.closed_before_ms is not None and bin_start_ms < self.closed_before_ms:
            return None
        return self.bins.setdefault(bin_start_ms, _Bin())

    def observe(self, frame: DetectionFrame) -> list[dict]:
        """One frame → the VehiclePassage records of the vehicles that crossed a count line in it."""
        ts_ms = int(frame.ts_ms)
        frame_bin = self._bin(self.bin_start(ts_ms))
        if frame_bin is None:  # later than its bin: nothing left to add it to
            return []
        frame_bin.frames += 1
        if self.geometry is None or (self.last_ts_ms is not None and ts_ms <= self.last_ts_ms):
            return []
        self.last_ts_ms = ts_ms
        detections = frame.detections
        vehicle = np.isin(detections.class_id, VEHICLE_CLASSES)
        anchors = detections.get_anchors_coordinates(ANCHOR)[vehicle]
        track_ids, class_ids = detections.tracker_id[vehicle], detections.class_id[vehicle]

        for lane in self.geometry.lanes:
            if len(anchors) and lane.contains(anchors).any():
                frame_bin.lane(lane.name).vehicle_frames += 1
        self.speeds.observe(ts_ms, track_ids, anchors)
        passages = [self._passage(crossing, frame_bin)
                    for counter in self.counters
                    for crossing in counter.observe(ts_ms, track_ids, class_ids, anchors)]
        for occupancy in self.zones:
            held, entries = occupancy.observe(ts_ms, track_ids, anchors)
            lane_name = occupancy.zone.lane
            if held is not None:
                for bin_start, start_ms, end_ms in split_by_bins(held.start_ms, held.end_ms, self.bin_ms):
                    held_bin = self._bin(bin_start)
                    if held_bin is not None:
                        held_bin.lane(lane_name).zones.add_held(start_ms, end_ms, held.occupied)
            for entry in entries:
                frame_bin.lane(lane_name).zones.add_entry(entry)
        self._sweep(ts_ms)
        return passages

    def _passage(self, crossing: Crossing, frame_bin: _Bin) -> dict:
        line = self.geometry_lines[crossing.line]
        lane = self.geometry.lane(line.lane)
        ts_ms = round(crossing.ts_ms)
        speed_kmh = self.speeds.speed_kmh(crossing.track_id)
        counted = self.lane_vehicles[lane.name]
        if crossing.track_id not in counted:  # the first of the lane's lines this vehicle crossed
            counted[crossing.track_id] = ts_ms
            lane_bin = (self._bin(self.bin_start(ts_ms)) or frame_bin).lane(lane.name)
            lane_bin.volume_by_class[CLASS_NAMES[crossing.class_id]] += 1
            if crossing.direction > 0:
                lane_bin.volume_positive += 1
            else:
                lane_bin.volume_negative += 1
            if speed_kmh is not None:
                lane_bin.speeds_kmh.append(speed_kmh)
        return dict(passage_id=f"{self.camera_id}:{line.name}:{crossing.track_id}", camera_id=self.camera_id,
                    lane=lane.name, lane_number=lane.number, line=line.name, track_id=crossing.track_id,
                    class_id=crossing.class_id, direction=crossing.direction, ts_ms=ts_ms, speed_kmh=speed_kmh)

    def _sweep(self, ts_ms: int) -> None:
        """Forget tracks unseen for `forget_after_ms` (checked once a second, not every frame)."""
        if self.last_swept_ms is not None and ts_ms - self.last_swept_ms < FORGET_EVERY_MS:
            return
        self.last_swept_ms = ts_ms
        unseen_since_ms = ts_ms - self.forget_after_ms
        for counter in self.counters:
            counter.forget(unseen_since_ms)
        for occupancy in self.zones:
            occupancy.forget(unseen_since_ms)
        self.speeds.forget(unseen_since_ms)
        seen = set().union(*(counter.tracks for counter in self.counters))
        for counted in self.lane_vehicles.values():
            for track_id in [t for t in counted if t not in seen]:
                del counted[track_id]

    def close_bin(self, bin_start_ms: int, camera_state: str | None) -> list[dict]:
        """The TrafficBin records (one per lane) of [bin_start_ms, bin_start_ms + bin_ms). `camera_state` is the
        camera's CameraStatus state in the bin (ONLINE, OFFLINE, DEGRADED, ENDED) or None when not known."""
        bin_start_ms = int(bin_start_ms)
        if bin_start_ms % self.bin_ms:
            raise ValueError(f"{bin_start_ms} is not the start of a {self.bin_ms} ms bin")
        measured = self.bins.pop(bin_start_ms, None) or _Bin()
        self.closed_before_ms = max(self.closed_before_ms or 0, bin_start_ms + self.bin_ms)
        if self.geometry is None:
            return []
        return [self._lane_record(lane, measured, bin_start_ms, camera_state) for lane in self.geometry.lanes]

    def _lane_record(self, lane: Lane, measured: _Bin, bin_start_ms: int, camera_state: str | None) -> dict:
        lane_bin = measured.lanes.get(lane.name) or _LaneBin()
        volume = lane_bin.volume_positive + lane_bin.volume_negative
        occupancy_pct = lane_bin.zones.occupancy_pct if self.geometry.zones_of(lane.name) else None
        speeds = np.asarray(lane_bin.speeds_kmh, dtype=float)
        mean_speed = float(speeds.mean()) if len(speeds) else None
        free_flow = self.free_flow[lane.name]
        free_flow.learn(lane_bin.speeds_kmh, occupancy_pct)
        active = volume or lane_bin.vehicle_frames or lane_bin.zones.occupied_ms
        if camera_state is not None and camera_state.upper() in CAMERA_STATUS:
            status = CAMERA_STATUS[camera_state.upper()]
        else:
            status = "no_data" if not measured.frames else ("ok" if active else "no_activity")
        return dict(
            bin_id=f"{self.camera_id}:{lane.name}:{bin_start_ms}", camera_id=self.camera_id, lane=lane.name,
            lane_number=lane.number, bin_start_ms=bin_start_ms, bin_end_ms=bin_start_ms + self.bin_ms,
            volume_by_class={CLASS_NAMES[c]: lane_bin.volume_by_class[CLASS_NAMES[c]] for c in VEHICLE_CLASSES},
            volume=volume, volume_positive=lane_bin.volume_positive, volume_negative=lane_bin.volume_negative,
            mean_speed_kmh=mean_speed,
            p85_speed_kmh=float(np.percentile(speeds, 85)) if len(speeds) else None,
            occupancy_pct=occupancy_pct,
            mean_headway_s=float(np.mean(lane_bin.zones.headways_s)) if lane_bin.zones.headways_s else None,
            mean_gap_s=float(np.mean(lane_bin.zones.gaps_s)) if lane_bin.zones.gaps_s else None,
            status=status,
            traffic_state=classify(mean_speed, free_flow.kmh, occupancy_pct, volume).value,
            free_flow_kmh=free_flow.kmh, speed_available=self.geometry.calibration is not None,
            frames=measured.frames)
