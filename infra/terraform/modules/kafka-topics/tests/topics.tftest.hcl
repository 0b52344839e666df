variables {
  namespace = "vigil"
}

run "registry_defaults" {
  command = plan

  assert {
    condition     = length(output.manifests) == length(jsondecode(file("topics.auto.json")).topics)
    error_message = "One KafkaTopic per registered topic."
  }
  assert {
    condition     = output.topics["frames.v1"].partitions == jsondecode(file("topics.auto.json")).topics["frames.v1"].partitions
    error_message = "Without overrides a topic keeps the registry's partitions."
  }
  assert {
    condition     = alltrue([for m in output.manifests : m.spec.config["min.insync.replicas"] == 2 && m.spec.replicas == 3])
    error_message = "Replication factor 3 with min.insync.replicas 2."
  }
}

run "sized_and_namespaced" {
  command = plan
  variables {
    partitions      = { "detections.v1" = 48 }
    topic_namespace = "site-a."
  }

  assert {
    condition     = one([for m in output.manifests : m if m.spec.topicName == "site-a.detections.v1"]).spec.partitions == 48
    error_message = "The sized partition count reaches the KafkaTopic, under the namespaced name."
  }
  assert {
    condition     = jsondecode(output.partitions_json)["detections.v1"] == 48
    error_message = "VIGIL_KAFKA_TOPICS carries the same count (logical names)."
  }
  assert {
    condition     = alltrue([for m in output.manifests : can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", m.metadata.name))])
    error_message = "Object names are DNS subdomains."
  }
}

run "unknown_topic_is_refused" {
  command = plan
  variables {
    partitions = { "lane-closures.v1" = 3 }
  }
  expect_failures = [output.manifests]
}

run "bad_namespace_is_refused" {
  command = plan
  variables {
    namespace = "Vigil_Prod"
  }
  expect_failures = [var.namespace]
}
