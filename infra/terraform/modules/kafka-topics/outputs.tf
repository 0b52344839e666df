output "manifests" {
  description = "KafkaTopic custom resources, one per registered topic."
  value       = local.manifests
  precondition {
    condition     = length(local.unknown) == 0
    error_message = "partitions/retention_ms name topics that are not in the registry (vigil/topics.py): ${join(", ", local.unknown)}."
  }
}

output "topics" {
  description = "Per logical topic name: deployed name, partitions, retention."
  value       = local.topics
}

output "partitions_json" {
  description = "VIGIL_KAFKA_TOPICS for the services: JSON of topic → partitions."
  value       = jsonencode({ for name, t in local.topics : name => t.partitions })
}
