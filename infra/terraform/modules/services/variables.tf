variable "namespace" {
  description = "Kubernetes namespace of the services."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "image" {
  description = "Container image with the vigil package installed (pip install . of this repository, ffmpeg/PyAV, the console's npm assets under /opt/vigil/console-ui); by digest or an immutable tag."
  type        = string
  validation {
    condition     = can(regex("^[^\\s:]+(:[^\\s:@]+)?(@sha256:[0-9a-f]{64})?$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image is a repository with a tag and/or @sha256 digest, not :latest."
  }
}

variable "service_account_name" {
  description = "ServiceAccount the pods run as (for the frame store's cloud credentials, e.g. IRSA)."
  type        = string
  default     = "vigil"
}

variable "common_env" {
  description = "VIGIL_* settings every component gets: the cluster's wiring (Kafka, Triton, ClickHouse, frame store)."
  type        = map(string)
}

variable "secret_env" {
  description = "VIGIL_* settings taken from Kubernetes Secrets (name and key), for every component that reads them: e.g. VIGIL_CLICKHOUSE_DSN, VIGIL_CLICKHOUSE_ANALYST_DSN, VIGIL_KAFKA_SASL_PASSWORD, VIGIL_API_TOKENS, VIGIL_WEBHOOK_SECRET."
  type = map(object({
    secret = string
    key    = string
  }))
  default = {}
}

variable "settings" {
  description = "Per component (ingest, infer, reid-embed, sink, sink-feeds, evidence, console, reid-api): VIGIL_* settings that override the defaults. Names a component does not read are refused."
  type        = map(map(string))
  default     = {}
}

variable "replicas" {
  description = "Steady-state replicas per scaled service (the sizing module's replicas): infer, reid_embed, sink."
  type        = map(number)
}

variable "max_replicas" {
  description = "Most replicas per scaled service (the sizing module's max_replicas)."
  type        = map(number)
}

variable "partitions" {
  description = "Partitions per logical topic, as deployed (every consumer group must fit)."
  type        = map(number)
}

variable "topic_namespace" {
  description = "VIGIL_TOPIC_NAMESPACE (prefix of deployed topic names)."
  type        = string
  default     = ""
}

variable "kafka_bootstrap" {
  description = "bootstrap.servers for KEDA's lag scaler (the same brokers the services use)."
  type        = string
}

variable "keda_kafka_authentication" {
  description = "Name of a KEDA TriggerAuthentication holding the Kafka SASL/TLS settings for the lag scaler; null = plaintext (an in-cluster Strimzi listener)."
  type        = string
  default     = null
}

variable "lag_target_s" {
  description = "KEDA adds a replica for every this many seconds of one pod's measured capacity lagging (lagThreshold = capacity x this)."
  type        = number
  default     = 10
  validation {
    condition     = var.lag_target_s >= 1 && var.lag_target_s <= 600
    error_message = "lag_target_s is 1 to 600."
  }
}

variable "capacities" {
  description = "Per-pod capacities (messages/s) that turn lag_target_s into KEDA lag thresholds: infer, reid_embed, sink."
  type        = map(number)
}

variable "cameras_yaml" {
  description = "The camera file (cameras.yaml, as `vigil ingest --cameras` reads it): split into ingest shards; the console reads it whole."
  type        = string
  validation {
    condition     = can(yamldecode(var.cameras_yaml).cameras) && length(yamldecode(var.cameras_yaml).cameras) >= 1
    error_message = "cameras_yaml is YAML with a non-empty `cameras` list."
  }
}

variable "ingest_shards" {
  description = "Ingest pods (the sizing module's replicas.ingest); each decodes its own share of the cameras."
  type        = number
  validation {
    condition     = var.ingest_shards >= 1 && floor(var.ingest_shards) == var.ingest_shards
    error_message = "ingest_shards is a whole number of at least 1."
  }
}

variable "sink_outputs" {
  description = "Outputs of the main, scaled sink (VIGIL_SINK_OUTPUTS)."
  type        = list(string)
  default     = ["clickhouse"]
  validation {
    condition     = length(var.sink_outputs) > 0 && alltrue([for o in var.sink_outputs : contains(["clickhouse", "datex2", "webhook", "mqtt"], o)])
    error_message = "sink_outputs are some of clickhouse, datex2, webhook, mqtt."
  }
}

variable "feed_outputs" {
  description = "Outputs of the single feeds sink (incidents.v1 and traffic.v1 to DATEX II, webhooks, MQTT; own consumer group, state on a volume); empty = no feeds sink."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.feed_outputs : contains(["datex2", "webhook", "mqtt"], o)])
    error_message = "feed_outputs are some of datex2, webhook, mqtt."
  }
}

variable "console" {
  description = "Run the operator console (replicas behind a ClusterIP Service; users file and cookie key from Secrets)."
  type = object({
    enabled        = optional(bool, true)
    replicas       = optional(number, 2)
    users_secret   = optional(string, "vigil-console-users")
    cookie_secure  = optional(bool, true)
    secret_key_ref = optional(object({ secret = string, key = string }), { secret = "vigil-console", key = "secret-key" })
  })
  default = {}
}

variable "reid_api" {
  description = "Run the re-ID search API (FastAPI) behind a ClusterIP Service."
  type = object({
    enabled  = optional(bool, false)
    replicas = optional(number, 2)
  })
  default = {}
}

variable "pools" {
  description = "The node-pools module's pools output: where each component runs."
  type = map(object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, value = string, effect = string }))
    gpu           = bool
  }))
}

variable "resources" {
  description = "Requests/limits per component, overriding the defaults (capacities were measured per 2-core pod)."
  type = map(object({
    cpu    = string
    memory = string
  }))
  default = {}
}

variable "zone_key" {
  description = "Node label of the zone, for topology spread."
  type        = string
  default     = "topology.kubernetes.io/zone"
}
