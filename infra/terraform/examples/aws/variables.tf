variable "region" {
  description = "AWS region."
  type        = string
}

variable "name" {
  description = "Name of the EKS cluster and prefix of every resource."
  type        = string
  default     = "vigil"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name is 2-31 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version is 1.30 or later (the manifests are validated against 1.33's schemas)."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "private_subnets" {
  description = "One private subnet per availability zone: zone name → subnet id. Node groups of the zoned pools (Kafka, ClickHouse) get one group per zone."
  type        = map(string)
  validation {
    condition     = length(var.private_subnets) >= 2
    error_message = "At least two zones."
  }
}

variable "public_endpoint_cidrs" {
  description = "CIDRs allowed to reach the EKS API's public endpoint; empty = private endpoint only."
  type        = list(string)
  default     = []
}

variable "cameras" {
  description = "Cameras the cluster is sized for (the sizing module, as the workloads root will size the pods)."
  type        = number
}

variable "fps_per_camera" {
  description = "Average sampling rate per camera."
  type        = number
  default     = 5
}

variable "msk" {
  description = "Use Amazon MSK for Kafka instead of Strimzi on the kafka node pool (SASL/SCRAM over TLS; the SCRAM secret is associated by you)."
  type = object({
    enabled       = optional(bool, false)
    kafka_version = optional(string, "3.8.x")
    instance_type = optional(string, "kafka.m7g.large")
    volume_gb     = optional(number, 1000)
  })
  default = {}
}

variable "node_groups" {
  description = "Instance types and vCPUs (or GPUs) per node of each pool; the node counts come from the sizing model."
  type = map(object({
    instance_types = list(string)
    vcpus          = number
    gpus           = optional(number, 0)
    disk_gb        = optional(number, 100)
  }))
  default = {
    system     = { instance_types = ["m7i.large"], vcpus = 2 }
    services   = { instance_types = ["c7i.4xlarge"], vcpus = 16 }
    kafka      = { instance_types = ["r7i.xlarge"], vcpus = 4, disk_gb = 50 }
    flink      = { instance_types = ["m7i.2xlarge"], vcpus = 8 }
    clickhouse = { instance_types = ["r7i.2xlarge"], vcpus = 8, disk_gb = 50 }
    gpu        = { instance_types = ["g6.2xlarge"], vcpus = 8, gpus = 1, disk_gb = 200 }
  }
  validation {
    condition     = alltrue([for p in ["system", "services", "kafka", "flink", "clickhouse", "gpu"] : contains(keys(var.node_groups), p)])
    error_message = "Every pool of the node-pools module needs a node group."
  }
  validation {
    condition     = var.node_groups["gpu"].gpus >= 1
    error_message = "The gpu pool's instances carry at least one GPU."
  }
}

variable "frame_retention_days" {
  description = "Backstop expiry of noncurrent frame-store object versions (ingest deletes frames itself after VIGIL_FRAME_RETENTION_HOURS)."
  type        = number
  default     = 7
}
