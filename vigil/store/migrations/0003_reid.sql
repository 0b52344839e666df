-- Cross-camera re-identification. Track summaries from the inference service (tracks.v1): the latest summary of a
-- track replaces earlier ones (version = sequence), so FINAL gives one row per track.
CREATE TABLE IF NOT EXISTS track_summaries (
    camera_id LowCardinality(String),
    track_id Int64,
    sequence UInt32,
    final Bool,
    class_id UInt16,
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    detections UInt32,
    entry_x Float32,
    entry_y Float32,
    exit_x Float32,
    exit_y Float32,
    embedding Array(Float32),
    embedding_samples UInt32,
    embedder LowCardinality(String),
    best_crop_uri Nullable(String),
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(sequence)
PARTITION BY toDate(first_seen)
ORDER BY (camera_id, track_id)
TTL toDateTime(last_seen) + INTERVAL {ttl_days} DAY;

-- Matches from the re-ID job (ReidMatch on events.v1). A match's global id can change when two chains are joined;
-- the job then re-emits the match with the same match_id and a later emitted_ts, which replaces the older row.
CREATE TABLE IF NOT EXISTS reid_matches (
    match_id String,
    global_id String,
    class_id UInt16,
    from_camera_id LowCardinality(String),
    from_track_id Int64,
    from_last_seen DateTime64(3, 'UTC'),
    to_camera_id LowCardinality(String),
    to_track_id Int64,
    to_first_seen DateTime64(3, 'UTC'),
    transit_s Float64 MATERIALIZED dateDiff('millisecond', from_last_seen, to_first_seen) / 1000.0,
    similarity Float32,
    embedder LowCardinality(String),
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(emitted_ts)
PARTITION BY toDate(to_first_seen)
ORDER BY match_id
TTL toDateTime(to_first_seen) + INTERVAL {ttl_days} DAY;

-- The global identity of every matched track (both ends of each match); unmatched tracks have none.
CREATE VIEW IF NOT EXISTS track_identities AS
SELECT camera_id, track_id, argMax(global_id, emitted_ts) AS global_id
FROM
(
    SELECT from_camera_id AS camera_id, from_track_id AS track_id, global_id, emitted_ts FROM reid_matches FINAL
    UNION ALL
    SELECT to_camera_id AS camera_id, to_track_id AS track_id, global_id, emitted_ts FROM reid_matches FINAL
)
GROUP BY camera_id, track_id;

-- Tracks with their re-ID summary and global id: what an analyst joins against.
CREATE VIEW IF NOT EXISTS tracks_global AS
SELECT s.camera_id AS camera_id, s.track_id AS track_id, s.class_id AS class_id, s.first_seen AS first_seen,
       s.last_seen AS last_seen, s.detections AS detections, s.best_crop_uri AS best_crop_uri,
       if(i.global_id = '', concat(s.camera_id, ':', toString(s.track_id)), i.global_id) AS global_id
FROM track_summaries AS s FINAL
LEFT JOIN track_identities AS i ON s.camera_id = i.camera_id AND s.track_id = i.track_id;
