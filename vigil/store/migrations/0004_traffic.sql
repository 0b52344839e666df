-- Traffic data from the traffic job (traffic.v1). bin_id and passage_id are deterministic, so at-least-once replays
-- replace rows; query with FINAL for exact figures.
CREATE TABLE IF NOT EXISTS traffic_bins (
    bin_id String,
    camera_id LowCardinality(String),
    lane LowCardinality(String),
    lane_number UInt16,
    bin_start DateTime64(3, 'UTC'),
    bin_end DateTime64(3, 'UTC'),
    volume_by_class Map(String, UInt32),
    volume UInt32,
    volume_positive UInt32,
    volume_negative UInt32,
    flow_per_hour Float64 MATERIALIZED volume * 3600000.0 / greatest(dateDiff('millisecond', bin_start, bin_end), 1),
    mean_speed_kmh Nullable(Float64),
    p85_speed_kmh Nullable(Float64),
    occupancy_pct Nullable(Float64),
    mean_headway_s Nullable(Float64),
    mean_gap_s Nullable(Float64),
    status LowCardinality(String),
    speed_available Bool,
    traffic_state LowCardinality(String),
    free_flow_kmh Nullable(Float64),
    frames UInt32,
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(bin_start)
ORDER BY (camera_id, lane, bin_start, bin_id)
TTL toDateTime(bin_start) + INTERVAL {ttl_days} DAY;

-- One row per vehicle and count line: time, lane, class, direction and speed.
CREATE TABLE IF NOT EXISTS vehicle_passages (
    passage_id String,
    camera_id LowCardinality(String),
    lane LowCardinality(String),
    lane_number UInt16,
    line LowCardinality(String),
    track_id Int64,
    class_id UInt16,
    direction Int8,
    ts DateTime64(3, 'UTC'),
    speed_kmh Nullable(Float64),
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (camera_id, lane, ts, passage_id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY;

-- 15-minute and 1-hour rollups, kept up to date by materialized views. Each rollup row keeps the set of its bins
-- (groupUniqArray of their values), so a bin inserted twice by a replay is counted once: the rollups stay exact.
CREATE TABLE IF NOT EXISTS traffic_rollups (
    camera_id LowCardinality(String),
    lane LowCardinality(String),
    lane_number UInt16,
    period LowCardinality(String),
    period_start DateTime64(3, 'UTC'),
    bins AggregateFunction(groupUniqArray, Tuple(String, UInt32, UInt32, UInt32, Float64, UInt32, Float64, UInt8))
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(period_start)
ORDER BY (camera_id, lane, lane_number, period, period_start)
TTL toDateTime(period_start) + INTERVAL {ttl_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS traffic_rollup_15min_mv TO traffic_rollups AS
SELECT camera_id, lane, lane_number, '15min' AS period, toStartOfFifteenMinutes(bin_start) AS period_start,
       groupUniqArrayState((bin_id, volume, volume_positive, volume_negative,
                            ifNull(mean_speed_kmh, 0) * volume, if(mean_speed_kmh IS NULL, 0, volume),
                            ifNull(occupancy_pct, -1), toUInt8(status IN ('ok', 'no_activity')))) AS bins
FROM traffic_bins GROUP BY camera_id, lane, lane_number, period, period_start;

CREATE MATERIALIZED VIEW IF NOT EXISTS traffic_rollup_1h_mv TO traffic_rollups AS
SELECT camera_id, lane, lane_number, '1h' AS period, toStartOfHour(bin_start) AS period_start,
       groupUniqArrayState((bin_id, volume, volume_positive, volume_negative,
                            ifNull(mean_speed_kmh, 0) * volume, if(mean_speed_kmh IS NULL, 0, volume),
                            ifNull(occupancy_pct, -1), toUInt8(status IN ('ok', 'no_activity')))) AS bins
FROM traffic_bins GROUP BY camera_id, lane, lane_number, period, period_start;

-- The rollups as analysts query them: one row per lane and period.
CREATE VIEW IF NOT EXISTS traffic_15min AS
SELECT camera_id, lane, lane_number, period_start, length(b) AS bins, arraySum(x -> x.8, b) AS bins_observed,
       arraySum(x -> x.2, b) AS volume, arraySum(x -> x.3, b) AS volume_positive, arraySum(x -> x.4, b) AS volume_negative,
       arraySum(x -> x.2, b) * 4 AS flow_per_hour,
       if(arraySum(x -> x.6, b) = 0, NULL, arraySum(x -> x.5, b) / arraySum(x -> x.6, b)) AS mean_speed_kmh,
       if(empty(arrayFilter(o -> o >= 0, arrayMap(x -> x.7, b))), NULL,
          arrayAvg(arrayFilter(o -> o >= 0, arrayMap(x -> x.7, b)))) AS occupancy_pct
FROM (SELECT camera_id, lane, lane_number, period_start, groupUniqArrayMerge(bins) AS b FROM traffic_rollups
      WHERE period = '15min' GROUP BY camera_id, lane, lane_number, period_start);

CREATE VIEW IF NOT EXISTS traffic_1h AS
SELECT camera_id, lane, lane_number, period_start, length(b) AS bins, arraySum(x -> x.8, b) AS bins_observed,
       arraySum(x -> x.2, b) AS volume, arraySum(x -> x.3, b) AS volume_positive, arraySum(x -> x.4, b) AS volume_negative,
       arraySum(x -> x.2, b) AS flow_per_hour,
       if(arraySum(x -> x.6, b) = 0, NULL, arraySum(x -> x.5, b) / arraySum(x -> x.6, b)) AS mean_speed_kmh,
       if(empty(arrayFilter(o -> o >= 0, arrayMap(x -> x.7, b))), NULL,
          arrayAvg(arrayFilter(o -> o >= 0, arrayMap(x -> x.7, b)))) AS occupancy_pct
FROM (SELECT camera_id, lane, lane_number, period_start, groupUniqArrayMerge(bins) AS b FROM traffic_rollups
      WHERE period = '1h' GROUP BY camera_id, lane, lane_number, period_start);
