variables {
  cameras_yaml     = "cameras:\n- {id: cam-1, url: 'rtsp://c/1'}\n- {id: cam-2, url: 'rtsp://c/2', fps: 10}\n"
  zones            = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  images           = { vigil = "registry.example/vigil:1.0.0", flink = "registry.example/vigil-flink:1.0.0", triton = "registry.example/triton:24.10-vigil" }
  frame_store_uri  = "s3://vigil-frames/frames"
  checkpoint_uri   = "s3://vigil-checkpoints/flink"
  model_repository = "s3://vigil-models/gpu"
}

run "small_site" {
  command = plan

  assert {
    condition     = output.sizing.cameras == 2 && output.sizing.fps == 7.5
    error_message = "Two cameras at 5 and 10 fps: ${jsonencode(output.sizing)}"
  }
  assert {
    condition     = length(output.manifests.namespaces) == 2 && contains([for m in output.manifests.custom : m.kind], "Kafka")
    error_message = "Namespaces for Vigil and Kafka; the in-cluster Kafka."
  }
  assert {
    condition     = alltrue([for g in values(output.consumer_groups) : alltrue([for t in g.topics : g.max_replicas <= output.sizing.partitions[t]])])
    error_message = "No consumer group outgrows a topic it reads."
  }
  assert {
    condition     = output.endpoints.kafka_bootstrap == "vigil-kafka-bootstrap.kafka.svc:9092" && output.endpoints.triton_grpc == "vigil-triton.vigil.svc:8001"
    error_message = "Endpoints: ${jsonencode(output.endpoints)}"
  }
}

run "external_kafka" {
  command = plan
  variables {
    kafka = {
      in_cluster                 = false
      bootstrap                  = "b-1.msk.example:9094,b-2.msk.example:9094"
      config_secret              = { secret = "vigil-kafka", key = "config" }
      keda_authentication        = "vigil-kafka"
      manage_topics_with_strimzi = false
    }
  }

  assert {
    condition     = !contains([for m in output.manifests.custom : m.kind], "Kafka") && !contains([for m in output.manifests.custom : m.kind], "KafkaTopic")
    error_message = "No Strimzi objects against MSK."
  }
  assert {
    condition     = contains(output.env["infer"].secrets, "VIGIL_KAFKA_CONFIG") && output.env["infer"].plain["VIGIL_KAFKA_BOOTSTRAP"] == "b-1.msk.example:9094,b-2.msk.example:9094"
    error_message = "The services reach MSK with the client settings from the Secret."
  }
}

run "external_kafka_without_bootstrap_is_refused" {
  command = plan
  variables {
    kafka = { in_cluster = false }
  }
  expect_failures = [var.kafka]
}

run "local_frame_store_is_refused" {
  command = plan
  variables {
    frame_store_uri = "/var/lib/vigil/frames"
  }
  expect_failures = [var.frame_store_uri]
}
