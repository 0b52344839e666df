-- Who viewed which clip: one row per clip request the operator console served (services/console/audit.py), written
-- before the bytes go out (a view that cannot be recorded is refused). Append-only; `range` is the HTTP Range the
-- video element asked for (seeks and resumed plays are further requests of the same view). No TTL: the audit is kept
-- until removed on purpose, and `vigil erase` keeps it (it is the record the erasure answers to).
CREATE TABLE IF NOT EXISTS clip_views (
    view_id String,
    viewed DateTime64(3, 'UTC'),
    actor String,
    role LowCardinality(String),
    incident_id String,
    camera_id LowCardinality(String),
    clip_uri String,
    range String,
    client_address String,
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(viewed)
ORDER BY (camera_id, viewed, view_id);
