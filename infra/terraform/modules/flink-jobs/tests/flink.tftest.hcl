variables {
  namespace      = "vigil"
  image          = "registry.example/vigil-flink:2.3.0-1"
  checkpoint_uri = "s3://vigil-checkpoints/flink"
  jobs = {
    anomaly = { parallelism = 5, taskmanagers = 3 }
    reid    = { parallelism = 1, taskmanagers = 1 }
    traffic = { parallelism = 2, taskmanagers = 1 }
  }
  common_env = {
    VIGIL_KAFKA_EMBEDDED      = "false"
    VIGIL_KAFKA_BOOTSTRAP     = "vigil-kafka-bootstrap.kafka.svc:9092"
    VIGIL_TRITON_EMBEDDED     = "false"
    VIGIL_TRITON_URL          = "vigil-triton.vigil.svc:8001"
    VIGIL_CLICKHOUSE_EMBEDDED = "false"
    VIGIL_PROMETHEUS_EMBEDDED = "false"
    VIGIL_CLICKHOUSE_DSN      = "http://clickhouse:8123/vigil"
    VIGIL_FRAME_STORE         = "s3://frames/vigil"
    VIGIL_MODEL_REPOSITORY    = "/models"
    VIGIL_FLINK_LIB_DIR       = "/opt/vigil/jars"
  }
  partitions = { "detections.v1" = 8, "tracks.v1" = 2 }
  pools = {
    flink = { node_selector = { "vigil.io/pool" = "flink" }, tolerations = [{ key = "vigil.io/pool", operator = "Equal", value = "flink", effect = "NoSchedule" }], gpu = false }
  }
}

run "renders" {
  command = plan

  assert {
    condition     = length(output.manifests) == 3 && output.slots.total == 10
    error_message = "Three jobs, 3 + 1 + 1 TaskManagers of 2 slots."
  }
  assert {
    condition = alltrue([for m in output.manifests :
      m.spec.job.parallelism == tonumber(one([for e in m.spec.podTemplate.spec.containers[0].env : e.value if e.name == "VIGIL_FLINK_PARALLELISM"]))
    ])
    error_message = "The job reads the FlinkDeployment's parallelism from VIGIL_FLINK_PARALLELISM."
  }
  assert {
    condition     = one([for m in output.manifests : m if m.metadata.name == "vigil-anomaly"]).spec.flinkConfiguration["execution.checkpointing.dir"] == "s3://vigil-checkpoints/flink/vigil-anomaly/checkpoints"
    error_message = "Checkpoints go to object storage, per job."
  }
}

run "parallelism_above_partitions_is_refused" {
  command = plan
  variables {
    jobs = { reid = { parallelism = 3, taskmanagers = 2 } }
  }
  expect_failures = [output.manifests]
}

run "too_few_slots_are_refused" {
  command = plan
  variables {
    jobs = { anomaly = { parallelism = 5, taskmanagers = 2 } }
  }
  expect_failures = [output.manifests]
}

run "local_checkpoints_are_refused" {
  command = plan
  variables {
    checkpoint_uri = "file:///tmp/checkpoints"
  }
  expect_failures = [var.checkpoint_uri]
}
