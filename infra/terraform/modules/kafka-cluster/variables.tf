variable "namespace" {
  description = "Kubernetes namespace of the Kafka cluster (watched by the Strimzi operator)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "name" {
  description = "Name of the Kafka cluster (its bootstrap Service is <name>-kafka-bootstrap)."
  type        = string
  default     = "vigil"
}

variable "brokers" {
  description = "Broker nodes (the sizing module's kafka.brokers; a multiple of the zones)."
  type        = number
  validation {
    condition     = var.brokers >= 1 && floor(var.brokers) == var.brokers
    error_message = "brokers is a whole number of at least 1."
  }
}

variable "controllers" {
  description = "KRaft controller nodes."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 3, 5], var.controllers)
    error_message = "controllers is 1, 3 or 5."
  }
}

variable "replication_factor" {
  description = "Default replication factor and min.insync.replicas + 1."
  type        = number
  default     = 3
}

variable "kafka_version" {
  description = "Kafka version Strimzi runs."
  type        = string
  default     = "4.1.0"
}

variable "storage" {
  description = "Persistent volume per broker (and the storage class, null = the default)."
  type = object({
    size  = optional(string, "1Ti")
    class = optional(string)
  })
  default = {}
}

variable "resources" {
  description = "CPU and memory per broker."
  type = object({
    cpu    = string
    memory = string
  })
  default = { cpu = "4", memory = "16Gi" }
}

variable "pools" {
  description = "The node-pools module's pools output."
  type = map(object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, value = string, effect = string }))
    gpu           = bool
  }))
}

variable "zone_key" {
  description = "Node label of the zone: brokers get it as their rack, so partition replicas land in different zones."
  type        = string
  default     = "topology.kubernetes.io/zone"
}
