variable "namespace" {
  description = "Namespace of Vigil's services, jobs, Triton and ClickHouse."
  type        = string
  default     = "vigil"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "kafka_namespace" {
  description = "Namespace of the in-cluster Kafka (Strimzi) and its KafkaTopics."
  type        = string
  default     = "kafka"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.kafka_namespace)) && length(var.kafka_namespace) <= 63
    error_message = "kafka_namespace is a DNS-1123 label."
  }
}

variable "cameras_yaml" {
  description = "The camera file (cameras.yaml): its cameras and their fps size everything; ingest pods each take a share."
  type        = string
  validation {
    condition     = can(yamldecode(var.cameras_yaml).cameras) && length(yamldecode(var.cameras_yaml).cameras) >= 1
    error_message = "cameras_yaml is YAML with a non-empty `cameras` list."
  }
}

variable "zones" {
  description = "Availability zones of the cluster's nodes (topology.kubernetes.io/zone values)."
  type        = list(string)
  validation {
    condition     = length(var.zones) >= 2 && length(distinct(var.zones)) == length(var.zones)
    error_message = "At least 2 distinct zones."
  }
}

variable "images" {
  description = "Container images: vigil (services, migration), flink (PyFlink jobs), triton (tritonserver with the python models' packages)."
  type = object({
    vigil  = string
    flink  = string
    triton = string
  })
}

variable "frame_store_uri" {
  description = "VIGIL_FRAME_STORE: s3://bucket/prefix every pod shares (frames, evidence, retention pins)."
  type        = string
  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]+(/.*)?(\\?endpoint=.+)?$", var.frame_store_uri))
    error_message = "frame_store_uri is s3://bucket[/prefix][?endpoint=...]: pods do not share a local directory."
  }
}

variable "checkpoint_uri" {
  description = "s3://bucket/prefix for Flink checkpoints, savepoints and HA metadata."
  type        = string
}

variable "model_repository" {
  description = "Triton's model repository (s3://bucket/prefix, from `vigil triton-gpu-repo`)."
  type        = string
}

variable "kafka" {
  description = "Kafka: in_cluster = a Strimzi cluster rendered here; else bootstrap of an existing cluster (MSK, ...), with its client settings (VIGIL_KAFKA_CONFIG JSON) in a Secret and, for KEDA, a TriggerAuthentication."
  type = object({
    in_cluster                 = optional(bool, true)
    bootstrap                  = optional(string)
    config_secret              = optional(object({ secret = string, key = string }))
    keda_authentication        = optional(string)
    replication_factor         = optional(number, 3)
    topic_namespace            = optional(string, "")
    session_timeout_ms         = optional(number, 45000)
    manage_topics_with_strimzi = optional(bool, true)
  })
  default = {}
  validation {
    condition     = var.kafka.in_cluster || var.kafka.bootstrap != null
    error_message = "An external Kafka needs its bootstrap servers."
  }
}

variable "prometheus_url" {
  description = "Prometheus that scrapes Triton (KEDA's queue-time trigger)."
  type        = string
  default     = "http://prometheus-server.monitoring.svc"
}

variable "clickhouse_dsn_secret" {
  description = "Secret (name, key) with VIGIL_CLICKHOUSE_DSN (http://vigil:<password>@clickhouse-vigil.<namespace>.svc:8123/vigil); the same Secret holds the password under `password`."
  type = object({
    secret = string
    key    = string
  })
  default = { secret = "vigil-clickhouse", key = "dsn" }
}

variable "secret_env" {
  description = "More VIGIL_* settings from Secrets (e.g. VIGIL_WEBHOOK_SECRET, VIGIL_MQTT_PASSWORD), for whichever components read them."
  type = map(object({
    secret = string
    key    = string
  }))
  default = {}
}

variable "settings" {
  description = "VIGIL_* overrides per component: ingest, infer, reid-embed, sink, sink-feeds, evidence, console, reid-api, anomaly, reid, traffic."
  type        = map(map(string))
  default     = {}
}

variable "sizing" {
  description = "Sizing model inputs beside the cameras: headroom, burst_factor, min_replicas, triton_on_gpu, flink_slots_per_taskmanager and capacity overrides."
  type = object({
    headroom                    = optional(number, 0.3)
    burst_factor                = optional(number, 2)
    min_replicas                = optional(number, 2)
    triton_on_gpu               = optional(bool, true)
    flink_slots_per_taskmanager = optional(number, 2)
    capacities                  = optional(map(number), {})
  })
  default = {}
}

variable "feed_outputs" {
  description = "Outputs of the single feeds sink (datex2, webhook, mqtt); empty = none."
  type        = list(string)
  default     = []
}

variable "console_enabled" {
  description = "Run the operator console."
  type        = bool
  default     = true
}

variable "reid_api_enabled" {
  description = "Run the re-ID search API."
  type        = bool
  default     = false
}

variable "anomaly_registry_claim" {
  description = "PersistentVolumeClaim with the approved autoencoders (null = the anomaly job runs its rules only)."
  type        = string
  default     = null
}

variable "service_account_annotations" {
  description = "Annotations of the vigil ServiceAccount, e.g. eks.amazonaws.com/role-arn for the frame store and model repository buckets."
  type        = map(string)
  default     = {}
}

variable "pools" {
  description = "Node pools (the node-pools module's input); null = its defaults."
  type        = any
  default     = null
}
