variables {
  namespace        = "vigil"
  image            = "registry.example/tritonserver:24.10-py3-vigil"
  model_repository = "s3://vigil-models/gpu"
  replicas         = 2
  max_replicas     = 4
  prometheus_url   = "http://prometheus-server.monitoring.svc"
  pools = {
    services = { node_selector = { "vigil.io/pool" = "services" }, tolerations = [], gpu = false }
    gpu = {
      node_selector = { "vigil.io/pool" = "gpu" }
      tolerations   = [{ key = "nvidia.com/gpu", operator = "Equal", value = "present", effect = "NoSchedule" }]
      gpu           = true
    }
  }
}

run "gpu" {
  command = plan

  assert {
    condition     = output.manifests[1].spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    error_message = "One GPU per pod."
  }
  assert {
    condition     = output.manifests[1].spec.template.spec.nodeSelector["vigil.io/pool"] == "gpu" && output.manifests[1].spec.template.spec.tolerations[0].key == "nvidia.com/gpu"
    error_message = "GPU pods go to the GPU pool and tolerate its taint."
  }
  assert {
    condition     = output.manifests[3].spec.triggers[0].metadata.threshold == "30" && strcontains(output.manifests[3].spec.triggers[0].metadata.query, "nv_inference_queue_duration_us")
    error_message = "Scaled on queue time."
  }
  assert {
    condition     = contains(output.manifests[1].spec.template.spec.containers[0].command, "--model-repository=s3://vigil-models/gpu")
    error_message = "The model repository reaches tritonserver."
  }
  assert {
    condition     = output.grpc_endpoint == "vigil-triton.vigil.svc:8001" && output.gpus.most == 4
    error_message = "Endpoint and GPU count."
  }
}

run "cpu" {
  command = plan
  variables {
    on_gpu    = false
    resources = { cpu = "2", memory = "4Gi" }
  }

  assert {
    condition     = !contains(keys(output.manifests[1].spec.template.spec.containers[0].resources.limits), "nvidia.com/gpu") && length(output.manifests[1].spec.template.spec.tolerations) == 0
    error_message = "CPU pods ask for no GPU and tolerate nothing."
  }
}

run "replicas_above_max_are_refused" {
  command = plan
  variables {
    replicas = 5
  }
  expect_failures = [output.manifests]
}

run "bad_repository_is_refused" {
  command = plan
  variables {
    model_repository = "gs://bucket/models"
  }
  expect_failures = [var.model_repository]
}
