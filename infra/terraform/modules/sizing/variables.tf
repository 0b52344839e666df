variable "cameras" {
  description = "Number of cameras."
  type        = number
  validation {
    condition     = var.cameras >= 1 && floor(var.cameras) == var.cameras
    error_message = "cameras is a whole number of at least 1."
  }
}

variable "fps_per_camera" {
  description = "Sampling rate per camera (frames/s published to frames.v1), on average over the cameras."
  type        = number
  default     = 5
  validation {
    condition     = var.fps_per_camera > 0 && var.fps_per_camera <= 60
    error_message = "fps_per_camera is above 0 and at most 60 (the camera file's limit)."
  }
}

variable "headroom" {
  description = "Share of every measured capacity kept free (0.3: size each part to run at 70 % of what was measured)."
  type        = number
  default     = 0.3
  validation {
    condition     = var.headroom >= 0 && var.headroom < 0.9
    error_message = "headroom is at least 0 and below 0.9."
  }
}

variable "burst_factor" {
  description = "Autoscaled parts may grow to this multiple of their steady-state replicas to catch up a backlog; topics get at least as many partitions."
  type        = number
  default     = 2
  validation {
    condition     = var.burst_factor >= 1 && var.burst_factor <= 10
    error_message = "burst_factor is between 1 and 10."
  }
}

variable "zones" {
  description = "Availability zones the cluster spans: ClickHouse keeps one replica per zone, Kafka brokers come in multiples of it."
  type        = number
  default     = 3
  validation {
    condition     = var.zones >= 1 && var.zones <= 6 && floor(var.zones) == var.zones
    error_message = "zones is a whole number from 1 to 6."
  }
}

variable "min_replicas" {
  description = "Floor of every scaled service's replicas (2 keeps a service up through one pod's loss)."
  type        = number
  default     = 2
  validation {
    condition     = var.min_replicas >= 1 && floor(var.min_replicas) == var.min_replicas
    error_message = "min_replicas is a whole number of at least 1."
  }
}

variable "triton_on_gpu" {
  description = "Serve the detector from GPU Triton pods (one GPU each); false = CPU Triton pods."
  type        = bool
  default     = true
}

variable "flink_slots_per_taskmanager" {
  description = "Task slots per Flink TaskManager pod (taskmanager.numberOfTaskSlots)."
  type        = number
  default     = 2
  validation {
    condition     = var.flink_slots_per_taskmanager >= 1 && var.flink_slots_per_taskmanager <= 16 && floor(var.flink_slots_per_taskmanager) == var.flink_slots_per_taskmanager
    error_message = "flink_slots_per_taskmanager is a whole number from 1 to 16."
  }
}

variable "kafka_replication_factor" {
  description = "Replicas of every topic partition (broker write load is multiplied by it)."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 2, 3, 4, 5], var.kafka_replication_factor)
    error_message = "kafka_replication_factor is 1 to 5."
  }
}

variable "capacities" {
  description = "Per-component capacities, overriding those of capacities.json by name (same units); e.g. your own measured triton_gpu_frames_per_s_per_gpu."
  type        = map(number)
  default     = {}
  validation {
    condition     = alltrue([for v in values(var.capacities) : v > 0])
    error_message = "Every capacity is above 0."
  }
}

variable "topic_partitions" {
  description = "Default partitions per topic (the topic registry's); the sized partitions are never below these."
  type        = map(number)
  default     = null
}
