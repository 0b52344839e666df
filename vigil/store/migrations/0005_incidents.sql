-- Incidents from the anomaly job's incident stage (incidents.v1): every revision, so the table is each incident's
-- full history; (incident_id, revision) is deterministic, so at-least-once replays replace rows.
CREATE TABLE IF NOT EXISTS incidents (
    incident_id String,
    revision Int32,
    camera_id LowCardinality(String),
    kind LowCardinality(String),
    state LowCardinality(String),
    severity LowCardinality(String),
    zones Array(String),
    track_ids Array(Int64),
    event_ids Array(String),
    opened DateTime64(3, 'UTC'),
    updated DateTime64(3, 'UTC'),
    cleared Nullable(DateTime64(3, 'UTC')),
    score Float64,
    threshold Float64,
    snapshot_uri String,
    clip_uri String,
    detection_suspended Bool,
    emitted_ts DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(opened)
ORDER BY (camera_id, incident_id, revision)
TTL toDateTime(opened) + INTERVAL {ttl_days} DAY;

-- Operators' verdicts (acknowledged / confirmed / rejected with a reason); verdict_id is deterministic.
CREATE TABLE IF NOT EXISTS incident_verdicts (
    verdict_id String,
    incident_id String,
    camera_id LowCardinality(String),
    kind LowCardinality(String),
    zones Array(String),
    verdict LowCardinality(String),
    reason Nullable(String),
    actor String,
    decided DateTime64(3, 'UTC'),
    stored_ts DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(decided)
ORDER BY (camera_id, incident_id, verdict_id)
TTL toDateTime(decided) + INTERVAL {ttl_days} DAY;

-- Each incident's latest revision with its latest verdict: what the operator's queue shows.
CREATE VIEW IF NOT EXISTS incidents_current AS
SELECT i.*, v.verdict AS verdict, v.reason AS verdict_reason, v.actor AS verdict_actor, v.decided AS verdict_decided
FROM (SELECT * FROM incidents FINAL ORDER BY revision DESC LIMIT 1 BY incident_id) AS i
LEFT JOIN (SELECT incident_id, verdict, reason, actor, decided FROM incident_verdicts FINAL
           ORDER BY decided DESC LIMIT 1 BY incident_id) AS v USING (incident_id);
