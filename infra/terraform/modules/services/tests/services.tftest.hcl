variables {
  namespace = "vigil"
  image     = "registry.example/vigil:1.0.0"
  common_env = {
    VIGIL_KAFKA_EMBEDDED      = "false"
    VIGIL_KAFKA_BOOTSTRAP     = "vigil-kafka-bootstrap.kafka.svc:9092"
    VIGIL_TRITON_EMBEDDED     = "false"
    VIGIL_TRITON_URL          = "vigil-triton.vigil.svc:8001"
    VIGIL_CLICKHOUSE_EMBEDDED = "false"
    VIGIL_PROMETHEUS_EMBEDDED = "false"
    VIGIL_FRAME_STORE         = "s3://frames/vigil"
    VIGIL_MODEL_REPOSITORY    = "/models"
    VIGIL_FLINK_LIB_DIR       = "/opt/vigil/jars"
  }
  secret_env      = { VIGIL_CLICKHOUSE_DSN = { secret = "vigil-clickhouse", key = "dsn" } }
  replicas        = { infer = 3, reid_embed = 3, sink = 2 }
  max_replicas    = { infer = 6, reid_embed = 6, sink = 4 }
  partitions      = { "frames.v1" = 8, "detections.v1" = 8, "tracks.v1" = 4, "camera-status.v1" = 4, "events.v1" = 4, "traffic.v1" = 4, "incidents.v1" = 4, "deadletter.v1" = 4 }
  kafka_bootstrap = "vigil-kafka-bootstrap.kafka.svc:9092"
  capacities      = { infer = 20, reid_embed = 20, sink = 6800 }
  cameras_yaml    = "cameras:\n- {id: cam-1, url: 'rtsp://c/1'}\n- {id: cam-2, url: 'rtsp://c/2'}\n- {id: cam-3, url: 'rtsp://c/3'}\n"
  ingest_shards   = 2
  pools = {
    services = { node_selector = { "vigil.io/pool" = "services" }, tolerations = [], gpu = false }
  }
}

run "renders" {
  command = plan

  assert {
    condition     = output.ingest_shards.pods == 2 && output.ingest_shards.cameras_per_pod == 2
    error_message = "3 cameras over 2 shards: ${jsonencode(output.ingest_shards)}"
  }
  assert {
    condition     = length([for m in output.manifests : m if m.kind == "ScaledObject"]) == 3
    error_message = "infer, reid-embed and sink scale on lag."
  }
  assert {
    condition     = one([for m in output.manifests : m if m.kind == "ScaledObject" && m.metadata.name == "vigil-infer"]).spec.triggers[0].metadata.lagThreshold == "200"
    error_message = "lagThreshold = 20 frames/s x 10 s."
  }
  assert {
    condition     = output.consumer_groups["vigil-evidence"].max_replicas == 1
    error_message = "evidence runs as one instance."
  }
  assert {
    condition     = contains(output.env["sink"].secrets, "VIGIL_CLICKHOUSE_DSN") && output.env["sink"].plain["VIGIL_SINK_OUTPUTS"] == "[\"clickhouse\"]"
    error_message = "The sink gets its DSN from the Secret: ${jsonencode(output.env["sink"])}"
  }
  assert {
    condition     = output.env["infer"].plain["VIGIL_METRICS_PORT"] == "9400" && output.env["infer"].plain["VIGIL_METRICS_HOST"] == "0.0.0.0" && output.env["console"].plain["VIGIL_METRICS_PORT"] == "9400"
    error_message = "Every service, the console included, serves metrics on 9400 for Prometheus."
  }
  assert {
    condition     = contains(output.metrics.components, "console") && output.endpoints["console"] == "http://vigil-console.vigil.svc:18090"
    error_message = "The console is scraped, and its endpoint is its service port: ${jsonencode(output.endpoints)}"
  }
  assert {
    condition     = one([for m in output.manifests : m if m.kind == "Deployment" && m.metadata.name == "vigil-infer"]).spec.template.metadata.annotations["prometheus.io/port"] == "9400"
    error_message = "Scraped pods carry the prometheus.io annotations."
  }
  assert {
    condition     = can(yamldecode(one([for m in output.manifests : m if m.kind == "ConfigMap" && m.metadata.name == "vigil-prometheus-rules"]).data["vigil-alerts.yml"]).groups[0].rules[0].alert)
    error_message = "The alert rules ship as a ConfigMap."
  }
}

run "datex2_feed_has_an_endpoint" {
  command = plan
  variables {
    feed_outputs = ["datex2", "webhook"]
  }
  assert {
    condition     = output.endpoints["sink-feeds"] == "http://vigil-sink-feeds.vigil.svc:18091"
    error_message = "The DATEX II feed's endpoint is an output: ${jsonencode(output.endpoints)}"
  }
}

run "unknown_setting_is_refused" {
  command = plan
  variables {
    settings = { infer = { VIGIL_MAX_BATCH_SIZE = "8" } }
  }
  expect_failures = [output.manifests]
}

run "missing_cluster_setting_is_refused" {
  command = plan
  variables {
    secret_env = {}
  }
  expect_failures = [output.manifests]
}

run "group_larger_than_partitions_is_refused" {
  command = plan
  variables {
    max_replicas = { infer = 9, reid_embed = 6, sink = 4 }
  }
  expect_failures = [output.manifests]
}

run "latest_tag_is_refused" {
  command = plan
  variables {
    image = "registry.example/vigil:latest"
  }
  expect_failures = [var.image]
}
