"""The analyst cookbook: ClickHouse queries over the traffic tables, kept here once so that the README shows them
verbatim, `vigil sql --cookbook NAME --camera ID` runs them, the demo prints them and a test runs each against the
real store. Every query takes `{camera:String}` and a period `{since:DateTime64(3)}` .. `{until:DateTime64(3)}`.
"""

from __future__ import annotations

COOKBOOK: dict[str, tuple[str, str]] = {
    "lane_minutes": (
        "Per-lane traffic data, minute by minute, with the status that says whether the camera saw the road",
        """SELECT lane, formatDateTime(bin_start, '%H:%i') AS minute, volume, volume_by_class['car'] AS cars,
       round(mean_speed_kmh, 1) AS mean_kmh, round(p85_speed_kmh, 1) AS p85_kmh, round(occupancy_pct, 1) AS occupancy_pct,
       round(mean_headway_s, 1) AS headway_s, traffic_state, status
FROM traffic_bins FINAL
WHERE camera_id = {camera:String} AND bin_start >= {since:DateTime64(3)} AND bin_start < {until:DateTime64(3)}
ORDER BY lane, bin_start"""),
    "peak_hour": (
        "Peak hour per lane: the hour with the most vehicles (from the 1-hour rollup)",
        """SELECT lane, argMax(period_start, volume) AS peak_hour, max(volume) AS vehicles
FROM traffic_1h
WHERE camera_id = {camera:String} AND period_start >= toStartOfHour({since:DateTime64(3)}) AND period_start < {until:DateTime64(3)}
GROUP BY lane ORDER BY lane"""),
    "class_mix": (
        "Class mix: vehicles by class and their share",
        """SELECT class, sum(n) AS vehicles, round(100 * vehicles / sum(vehicles) OVER (), 1) AS share_pct
FROM (SELECT vc.1 AS class, vc.2 AS n FROM traffic_bins FINAL ARRAY JOIN volume_by_class AS vc
      WHERE camera_id = {camera:String} AND bin_start >= {since:DateTime64(3)} AND bin_start < {until:DateTime64(3)})
GROUP BY class HAVING vehicles > 0 ORDER BY vehicles DESC"""),
    "speed_distribution": (
        "Speed distribution: vehicles per 5 km/h band, per lane (from the passages)",
        """SELECT lane, toUInt32(floor(speed_kmh / 5) * 5) AS from_kmh, count() AS vehicles
FROM vehicle_passages FINAL
WHERE camera_id = {camera:String} AND ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND speed_kmh IS NOT NULL
GROUP BY lane, from_kmh ORDER BY lane, from_kmh"""),
    "flow_occupancy": (
        "Flow-occupancy diagram: one point per lane and observed minute (flow in vehicles/hour)",
        """SELECT lane, round(occupancy_pct, 1) AS occupancy_pct, flow_per_hour, traffic_state
FROM traffic_bins FINAL
WHERE camera_id = {camera:String} AND bin_start >= {since:DateTime64(3)} AND bin_start < {until:DateTime64(3)}
  AND status IN ('ok', 'no_activity') AND occupancy_pct IS NOT NULL
ORDER BY lane, occupancy_pct"""),
    "directional_split": (
        "Directional split per lane: with and against the lane's count direction",
        """SELECT lane, sum(volume_positive) AS with_direction, sum(volume_negative) AS against,
       round(100 * with_direction / greatest(with_direction + against, 1), 1) AS with_pct
FROM traffic_bins FINAL
WHERE camera_id = {camera:String} AND bin_start >= {since:DateTime64(3)} AND bin_start < {until:DateTime64(3)}
GROUP BY lane ORDER BY lane"""),
    "camera_down_minutes": (
        "Minutes the camera could not count (never mistaken for an empty road)",
        """SELECT lane, status, count() AS minutes
FROM traffic_bins FINAL
WHERE camera_id = {camera:String} AND bin_start >= {since:DateTime64(3)} AND bin_start < {until:DateTime64(3)}
  AND status NOT IN ('ok', 'no_activity')
GROUP BY lane, status ORDER BY lane, status"""),
}


def run(client, name: str, camera: str, since: str, until: str):
    """Run one cookbook query; `since`/`until` are 'YYYY-MM-DD hh:mm:ss[.fff]' UTC."""
    _, sql = COOKBOOK[name]
    return client.query(sql, parameters={"camera": camera, "since": since, "until": until})


def markdown() -> str:
    """The README's cookbook section body."""
    parts = []
    for name, (title, sql) in COOKBOOK.items():
        parts.append(f"**{title}** (`vigil sql --cookbook {name} --camera ID`):\n\n```sql\n{sql}\n```")
    return "\n\n".join(parts)
