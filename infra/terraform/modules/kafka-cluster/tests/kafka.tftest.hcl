variables {
  namespace = "kafka"
  brokers   = 6
  pools = {
    kafka = { node_selector = { "vigil.io/pool" = "kafka" }, tolerations = [{ key = "vigil.io/pool", operator = "Equal", value = "kafka", effect = "NoSchedule" }], gpu = false }
  }
}

run "renders" {
  command = plan
  assert {
    condition     = output.manifests[2].spec.replicas == 6 && output.manifests[1].spec.replicas == 3
    error_message = "6 brokers, 3 controllers."
  }
  assert {
    condition     = output.manifests[0].spec.kafka.rack.topologyKey == "topology.kubernetes.io/zone" && output.manifests[0].spec.kafka.config["min.insync.replicas"] == 2
    error_message = "Rack-aware by zone, min ISR 2."
  }
  assert {
    condition     = output.bootstrap == "vigil-kafka-bootstrap.kafka.svc:9092"
    error_message = "Bootstrap endpoint."
  }
}

run "too_few_brokers_are_refused" {
  command = plan
  variables {
    brokers = 2
  }
  expect_failures = [output.manifests]
}
