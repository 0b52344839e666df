-- Core results of the real-time path. Every table is keyed by a deterministic message id and uses ReplacingMergeTree,
-- so a replay after a crash replaces rows instead of double-counting them (query with FINAL for exact counts).

CREATE TABLE IF NOT EXISTS frames (
    frame_id String,
    camera_id LowCardinality(String),
    capture_ts DateTime64(3, 'UTC'),
    sequence UInt64,
    width UInt16,
    height UInt16,
    encoding LowCardinality(String),
    uri String,
    ingest_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(capture_ts)
ORDER BY (camera_id, capture_ts, frame_id)
TTL toDateTime(capture_ts) + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS detections (
    frame_id String,
    camera_id LowCardinality(String),
    capture_ts DateTime64(3, 'UTC'),
    sequence UInt64,
    ingest_ts DateTime64(3, 'UTC'),
    inference_ts DateTime64(3, 'UTC'),
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    x1 Array(Float32),
    y1 Array(Float32),
    x2 Array(Float32),
    y2 Array(Float32),
    class_id Array(UInt16),
    confidence Array(Float32),
    track_id Array(Int64),
    num_detections UInt16 MATERIALIZED length(class_id),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(capture_ts)
ORDER BY (camera_id, capture_ts, frame_id)
TTL toDateTime(capture_ts) + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS camera_status (
    status_id String,
    camera_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    state LowCardinality(String),
    frames_decoded UInt64,
    frames_published UInt64,
    decode_errors UInt64,
    reconnects UInt64,
    actual_fps Float32,
    message Nullable(String),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (camera_id, ts, status_id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS object_classes (
    class_id UInt16,
    name LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY class_id;

INSERT INTO object_classes VALUES (0, 'person'), (1, 'bicycle'), (2, 'car'), (3, 'motorcycle'), (5, 'bus'), (7, 'truck');

-- One row per track, derived from the detections so it can never disagree with them (exact under replays).
CREATE VIEW IF NOT EXISTS tracks AS
SELECT
    camera_id,
    track_id,
    topKWeighted(1)(cls, toUInt64(1))[1] AS class_id,
    min(capture_ts) AS first_seen,
    max(capture_ts) AS last_seen,
    count() AS detections,
    avg(conf) AS mean_confidence,
    argMin(box, capture_ts) AS entry_box,
    argMax(box, capture_ts) AS exit_box
FROM
(
    SELECT camera_id, capture_ts, tid AS track_id, cls, conf, (bx1, by1, bx2, by2) AS box
    FROM detections FINAL
    ARRAY JOIN track_id AS tid, class_id AS cls, confidence AS conf, x1 AS bx1, y1 AS by1, x2 AS bx2, y2 AS by2
    WHERE tid >= 0
)
GROUP BY camera_id, track_id;

-- Messages a service could not process, with the reason (the original bytes stay on deadletter.v1).
CREATE TABLE IF NOT EXISTS dead_letters (
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    service LowCardinality(String),
    reason String,
    value_size UInt32,
    ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (source_topic, source_partition, source_offset, service)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY;
