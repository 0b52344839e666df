"""Traffic counting: vehicle passages on count lines, per-lane bins of volume, speed, occupancy, headway and gap,
and the lane's traffic state. Plain classes over arrays (no Flink here); `TrafficEngine` is the per-camera whole."""
