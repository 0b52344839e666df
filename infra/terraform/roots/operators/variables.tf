variable "kubeconfig_path" {
  description = "kubeconfig of the target cluster (e.g. after `aws eks update-kubeconfig`)."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "kubeconfig context; null = the current one."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace of Vigil's workloads (the Flink operator watches it)."
  type        = string
  default     = "vigil"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace))
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "kafka_namespace" {
  description = "Namespace of the in-cluster Kafka (the Strimzi operator watches it)."
  type        = string
  default     = "kafka"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.kafka_namespace))
    error_message = "kafka_namespace is a DNS-1123 label."
  }
}

variable "versions" {
  description = "Chart versions; the CRDs in ../shared/k8s-crds that the rendered objects are validated against are these releases'."
  type = object({
    strimzi        = optional(string, "1.2.0")
    flink_operator = optional(string, "1.15.0")
    keda           = optional(string, "2.20.2")
    clickhouse     = optional(string, "0.25.6")
    cert_manager   = optional(string, "v1.19.1")
    prometheus     = optional(string, "27.45.0")
    gpu_operator   = optional(string, "v25.3.4")
  })
  default = {}
  validation {
    condition     = alltrue([for v in values(var.versions) : can(regex("^v?[0-9]+\\.[0-9]+\\.[0-9]+$", v))])
    error_message = "Chart versions are exact (x.y.z or vx.y.z): the CRDs the objects were validated against are these releases'."
  }
}

variable "install" {
  description = "Which operators to install: Strimzi (skip with MSK), Prometheus (KEDA's Triton trigger reads it; skip if the cluster has one), the NVIDIA GPU operator (skip where the nodes' image carries the driver and device plugin, e.g. EKS's NVIDIA AMI with the device plugin)."
  type = object({
    strimzi      = optional(bool, true)
    prometheus   = optional(bool, true)
    gpu_operator = optional(bool, false)
  })
  default = {}
}

variable "flink_service_account_annotations" {
  description = "Annotations of the Flink jobs' ServiceAccount `flink` (e.g. eks.amazonaws.com/role-arn with write access to the checkpoint bucket)."
  type        = map(string)
  default     = {}
}

variable "system_node_selector" {
  description = "nodeSelector of the operators' pods (the node-pools module's system pool)."
  type        = map(string)
  default     = { "vigil.io/pool" = "system" }
}
