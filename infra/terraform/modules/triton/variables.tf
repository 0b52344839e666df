variable "namespace" {
  description = "Kubernetes namespace of Triton."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "image" {
  description = "Triton image: an NGC tritonserver (24.10 = Triton 2.51, as embedded here) with numpy<2, opencv-python-headless and onnx added for the python models."
  type        = string
  validation {
    condition     = can(regex("^[^\\s:]+(:[^\\s:@]+)?(@sha256:[0-9a-f]{64})?$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image is a repository with a tag and/or @sha256 digest, not :latest."
  }
}

variable "model_repository" {
  description = "Where Triton loads models from: s3://bucket/prefix (the output of `vigil triton-gpu-repo`, synced with links followed) or a path inside the image."
  type        = string
  validation {
    condition     = can(regex("^(s3://[a-z0-9][a-z0-9.-]+(/.*)?|/.+)$", var.model_repository))
    error_message = "model_repository is s3://bucket[/prefix] or an absolute path."
  }
}

variable "models" {
  description = "Models loaded at start (--model-control-mode=explicit); the detectors' M_onnx networks are loaded by their python models' BLS calls and must be listed too."
  type        = list(string)
  default     = ["yolox_nano", "yolox_nano_onnx", "reid_learned"]
  validation {
    condition     = length(var.models) > 0
    error_message = "Load at least one model."
  }
}

variable "on_gpu" {
  description = "One NVIDIA GPU per pod, on the gpu pool; false = CPU pods on the services pool."
  type        = bool
  default     = true
}

variable "replicas" {
  description = "Steady-state pods (the sizing module's triton.pods)."
  type        = number
}

variable "max_replicas" {
  description = "Most pods (the sizing module's triton.max_pods)."
  type        = number
  validation {
    condition     = var.max_replicas >= 1
    error_message = "max_replicas is at least 1."
  }
}

variable "queue_time_target_ms" {
  description = "KEDA scales Triton so the mean time a request waits in Triton's queue stays at this (ms), from nv_inference_queue_duration_us."
  type        = number
  default     = 30
  validation {
    condition     = var.queue_time_target_ms > 0
    error_message = "queue_time_target_ms is above 0."
  }
}

variable "prometheus_url" {
  description = "Prometheus that scrapes Triton's metrics port (pods annotated prometheus.io/scrape), queried by KEDA."
  type        = string
  validation {
    condition     = can(regex("^https?://", var.prometheus_url))
    error_message = "prometheus_url is an http(s) URL."
  }
}

variable "pools" {
  description = "The node-pools module's pools output."
  type = map(object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, value = string, effect = string }))
    gpu           = bool
  }))
}

variable "resources" {
  description = "CPU and memory per pod (the python models' pre- and post-processing run on the pod's CPUs)."
  type = object({
    cpu    = string
    memory = string
  })
  default = { cpu = "8", memory = "16Gi" }
}

variable "service_account_name" {
  description = "ServiceAccount (read access to the model repository bucket)."
  type        = string
  default     = "vigil"
}

variable "zone_key" {
  description = "Node label of the zone, for topology spread."
  type        = string
  default     = "topology.kubernetes.io/zone"
}
