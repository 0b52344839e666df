variable "namespace" {
  description = "Kubernetes namespace of the KafkaTopic objects (the Strimzi cluster's, watched by its topic operator)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "kafka_cluster" {
  description = "Name of the Strimzi Kafka cluster the topics belong to (label strimzi.io/cluster)."
  type        = string
  default     = "vigil"
}

variable "partitions" {
  description = "Partitions per topic (normally the sizing module's); topics left out keep the registry's count. Names must be in the registry."
  type        = map(number)
  default     = {}
  validation {
    condition     = alltrue([for p in values(var.partitions) : p >= 1 && floor(p) == p])
    error_message = "Partition counts are whole numbers of at least 1."
  }
}

variable "replication_factor" {
  description = "Replicas of every partition."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 2, 3, 4, 5], var.replication_factor)
    error_message = "replication_factor is 1 to 5."
  }
}

variable "topic_namespace" {
  description = "VIGIL_TOPIC_NAMESPACE: prefix of every deployed topic name (e.g. \"site-a.\"), to share one Kafka cluster."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]*$", var.topic_namespace))
    error_message = "topic_namespace may hold letters, digits, '.', '_' and '-' only (Kafka topic name characters)."
  }
}

variable "retention_ms" {
  description = "Retention per topic (ms), overriding the registry's."
  type        = map(number)
  default     = {}
}
