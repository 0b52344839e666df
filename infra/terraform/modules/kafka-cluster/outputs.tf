output "manifests" {
  description = "The Kafka and its two KafkaNodePools (custom resources)."
  value       = concat([local.kafka], local.node_pools)
  precondition {
    condition     = var.brokers >= var.replication_factor
    error_message = "Fewer brokers than the replication factor."
  }
}

output "bootstrap" {
  description = "bootstrap.servers of the plaintext listener in the cluster (VIGIL_KAFKA_BOOTSTRAP)."
  value       = "${var.name}-kafka-bootstrap.${var.namespace}.svc:9092"
}

output "bootstrap_tls" {
  description = "bootstrap.servers of the TLS listener."
  value       = "${var.name}-kafka-bootstrap.${var.namespace}.svc:9093"
}
