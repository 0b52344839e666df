# One Strimzi KafkaTopic per topic of the registry (vigil/topics.py, written to topics.auto.json by
# infra/terraform/generate.py): partitions, replicas and retention.

locals {
  registry = jsondecode(file("${path.module}/topics.auto.json")).topics
  unknown  = setsubtract(keys(merge(var.partitions, var.retention_ms)), keys(local.registry))

  topics = {
    for name, t in local.registry : name => {
      deployed     = "${var.topic_namespace}${name}"
      partitions   = lookup(var.partitions, name, t.partitions)
      retention_ms = lookup(var.retention_ms, name, t.retention_ms)
    }
  }

  manifests = [
    for name, t in local.topics : {
      apiVersion = "kafka.strimzi.io/v1"
      kind       = "KafkaTopic"
      metadata = {
        name      = trim(replace(lower(t.deployed), "/[^a-z0-9.-]/", "-"), "-.")
        namespace = var.namespace
        labels = {
          "strimzi.io/cluster"        = var.kafka_cluster
          "app.kubernetes.io/part-of" = "vigil"
        }
        annotations = { "vigil.io/key" = local.registry[name].key }
      }
      spec = {
        topicName  = t.deployed
        partitions = t.partitions
        replicas   = var.replication_factor
        config = merge({
          "retention.ms"   = t.retention_ms
          "cleanup.policy" = "delete"
          }, var.replication_factor > 1 ? {
          "min.insync.replicas" = var.replication_factor - 1
        } : {})
      }
    }
  ]
}
