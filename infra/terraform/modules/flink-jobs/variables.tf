variable "namespace" {
  description = "Kubernetes namespace of the FlinkDeployments (watched by the Flink operator)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "image" {
  description = "Flink image with PyFlink, the vigil package and the Kafka connector jars in /opt/vigil/jars (built FROM flink:<flink_release>)."
  type        = string
  validation {
    condition     = can(regex("^[^\\s:]+(:[^\\s:@]+)?(@sha256:[0-9a-f]{64})?$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image is a repository with a tag and/or @sha256 digest, not :latest."
  }
}

variable "flink_version" {
  description = "spec.flinkVersion as the operator names it (operator 1.15 knows up to v2_2; the jobs are tested on PyFlink 2.3)."
  type        = string
  default     = "v2_2"
  validation {
    condition     = contains(["v1_20", "v2_0", "v2_1", "v2_2"], var.flink_version)
    error_message = "flink_version is one the operator and PyFlink 2.x share: v1_20, v2_0, v2_1 or v2_2."
  }
}

variable "flink_release" {
  description = "Flink release inside the image: names the PythonDriver jar (opt/flink-python-<release>.jar) and the S3 plugin."
  type        = string
  default     = "2.3.0"
  validation {
    condition     = can(regex("^[12]\\.[0-9]+\\.[0-9]+$", var.flink_release))
    error_message = "flink_release is a version like 2.3.0."
  }
}

variable "checkpoint_uri" {
  description = "Object storage for checkpoints, savepoints and HA metadata, s3://bucket/prefix; each job gets <uri>/<job>/{checkpoints,savepoints,ha}."
  type        = string
  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]+(/.*)?$", var.checkpoint_uri))
    error_message = "checkpoint_uri is s3://bucket[/prefix]."
  }
}

variable "jobs" {
  description = "Per job (anomaly, reid, traffic): parallelism and TaskManagers (the sizing module's flink output)."
  type = map(object({
    parallelism  = number
    taskmanagers = number
  }))
  validation {
    condition     = length(setsubtract(keys(var.jobs), ["anomaly", "reid", "traffic"])) == 0 && length(var.jobs) > 0
    error_message = "jobs are some of anomaly, reid, traffic."
  }
  validation {
    condition     = alltrue([for j in values(var.jobs) : j.parallelism >= 1 && j.taskmanagers >= 1])
    error_message = "Every job has at least parallelism 1 and one TaskManager."
  }
}

variable "slots_per_taskmanager" {
  description = "taskmanager.numberOfTaskSlots."
  type        = number
  default     = 2
}

variable "common_env" {
  description = "VIGIL_* settings every job gets (the cluster's wiring)."
  type        = map(string)
}

variable "secret_env" {
  description = "VIGIL_* settings from Secrets (name, key), e.g. VIGIL_KAFKA_CONFIG."
  type = map(object({
    secret = string
    key    = string
  }))
  default = {}
}

variable "settings" {
  description = "Per job (anomaly, reid, traffic): VIGIL_* overrides. Names the job does not read are refused."
  type        = map(map(string))
  default     = {}
}

variable "partitions" {
  description = "Partitions per logical topic (a job's parallelism must not exceed its source topic's)."
  type        = map(number)
}

variable "anomaly_registry_claim" {
  description = "PersistentVolumeClaim (ReadOnlyMany/ReadWriteMany) holding the approved autoencoders (vigil anomaly-train); null = rules only."
  type        = string
  default     = null
}

variable "pools" {
  description = "The node-pools module's pools output."
  type = map(object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, value = string, effect = string }))
    gpu           = bool
  }))
}

variable "service_account_name" {
  description = "ServiceAccount of the JobManager and TaskManagers (the Flink operator's, with S3 access for checkpoints)."
  type        = string
  default     = "flink"
}

variable "taskmanager_memory_per_slot_mb" {
  description = "TaskManager memory per slot (a Python-heavy slot measured about 1 GB RSS here)."
  type        = number
  default     = 2048
}
