variable "kubeconfig_path" {
  description = "kubeconfig of the target cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "kubeconfig context; null = the current one."
  type        = string
  default     = null
}

variable "cameras_file" {
  description = "Path of the camera file (cameras.yaml) that sizes and configures the deployment."
  type        = string
  validation {
    condition     = can(yamldecode(file(var.cameras_file)).cameras)
    error_message = "cameras_file is a readable YAML camera file with a `cameras` list."
  }
}

variable "zones" {
  description = "Availability zones of the nodes (topology.kubernetes.io/zone values)."
  type        = list(string)
}

variable "images" {
  description = "Images: vigil, flink, triton (see the deployment guide for what each must contain)."
  type = object({
    vigil  = string
    flink  = string
    triton = string
  })
}

variable "frame_store_uri" {
  description = "VIGIL_FRAME_STORE, s3://bucket/prefix."
  type        = string
}

variable "checkpoint_uri" {
  description = "s3://bucket/prefix for Flink checkpoints, savepoints and HA metadata."
  type        = string
}

variable "model_repository" {
  description = "Triton's model repository, s3://bucket/prefix."
  type        = string
}

variable "kafka" {
  description = "Kafka (see modules/deployment): in-cluster Strimzi by default, or an external cluster's bootstrap (e.g. the AWS example's msk_bootstrap) with its client settings (VIGIL_KAFKA_CONFIG) in a Secret and a KEDA TriggerAuthentication."
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
  description = "Prometheus scraping Triton (the operators root's prometheus_url output)."
  type        = string
  default     = "http://prometheus-server.monitoring.svc"
}

variable "settings" {
  description = "VIGIL_* overrides per component (see modules/deployment)."
  type        = map(map(string))
  default     = {}
}

variable "secret_env" {
  description = "More VIGIL_* settings from Secrets."
  type = map(object({
    secret = string
    key    = string
  }))
  default = {}
}

variable "sizing" {
  description = "Sizing inputs besides the cameras (see modules/sizing): headroom, burst_factor, min_replicas, triton_on_gpu, flink_slots_per_taskmanager, capacity overrides."
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
  description = "Outputs of the feeds sink (datex2, webhook, mqtt)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.feed_outputs : contains(["datex2", "webhook", "mqtt"], o)])
    error_message = "feed_outputs are some of datex2, webhook, mqtt."
  }
}

variable "service_account_annotations" {
  description = "Annotations of the vigil ServiceAccount (IRSA role for the buckets)."
  type        = map(string)
  default     = {}
}
