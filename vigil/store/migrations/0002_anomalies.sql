-- Anomaly events from the anomaly job (events.v1). event_id is deterministic, so at-least-once replays replace rows.
CREATE TABLE IF NOT EXISTS anomalies (
    event_id String,
    camera_id LowCardinality(String),
    kind LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    score Float64,
    threshold Float64,
    track_ids Array(Int64),
    zone Nullable(String),
    top_cells Array(String),
    model_version Nullable(String),
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (camera_id, window_start, event_id)
TTL toDateTime(window_start) + INTERVAL {ttl_days} DAY;
