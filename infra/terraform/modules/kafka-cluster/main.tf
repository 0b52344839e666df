# An in-cluster Kafka on Strimzi (KRaft): a Kafka with rack awareness by zone, a KafkaNodePool of controllers and one
# of brokers on the kafka pool, spread over the zones. Use it or point the services at MSK/any Kafka instead.

locals {
  pool = var.pools["kafka"]
  volume = merge({ type = "persistent-claim", size = var.storage.size, deleteClaim = false, kraftMetadata = "shared" },
  var.storage.class == null ? {} : { class = var.storage.class })
  pod_template = {
    pod = {
      tolerations = local.pool.tolerations
      affinity = { nodeAffinity = { requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms = [{
        matchExpressions = [for k, v in local.pool.node_selector : { key = k, operator = "In", values = [v] }]
      }] } } }
      topologySpreadConstraints = [{
        maxSkew           = 1
        topologyKey       = var.zone_key
        whenUnsatisfiable = "DoNotSchedule"
        labelSelector     = { matchLabels = { "strimzi.io/cluster" = var.name } }
      }]
    }
  }
  min_isr = max(1, var.replication_factor - 1)

  kafka = {
    apiVersion = "kafka.strimzi.io/v1"
    kind       = "Kafka"
    metadata   = { name = var.name, namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "vigil" } }
    spec = {
      kafka = {
        version = var.kafka_version
        listeners = [
          { name = "plain", port = 9092, type = "internal", tls = false },
          { name = "tls", port = 9093, type = "internal", tls = true },
        ]
        rack = { topologyKey = var.zone_key }
        config = {
          "default.replication.factor"               = var.replication_factor
          "min.insync.replicas"                      = local.min_isr
          "offsets.topic.replication.factor"         = var.replication_factor
          "transaction.state.log.replication.factor" = var.replication_factor
          "transaction.state.log.min.isr"            = local.min_isr
          "auto.create.topics.enable"                = false
          "replica.selector.class"                   = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
        }
      }
      entityOperator = { topicOperator = {}, userOperator = {} }
    }
  }

  node_pools = [for role in ["controller", "broker"] : {
    apiVersion = "kafka.strimzi.io/v1"
    kind       = "KafkaNodePool"
    metadata = {
      name      = "${role}s"
      namespace = var.namespace
      labels    = { "strimzi.io/cluster" = var.name, "app.kubernetes.io/part-of" = "vigil" }
    }
    spec = {
      replicas  = role == "broker" ? var.brokers : var.controllers
      roles     = [role]
      storage   = { type = "jbod", volumes = [merge(local.volume, { id = 0 }, role == "controller" ? { size = "20Gi" } : {})] }
      resources = role == "broker" ? { requests = var.resources, limits = var.resources } : { requests = { cpu = "1", memory = "4Gi" }, limits = { cpu = "1", memory = "4Gi" } }
      template  = local.pod_template
    }
  }]
}
