output "manifests" {
  description = "FlinkDeployment custom resources, one per job."
  value       = local.manifests

  precondition {
    condition     = length(local.unknown_settings) == 0
    error_message = "Settings the job does not read: ${join(", ", local.unknown_settings)}."
  }
  precondition {
    condition     = length(local.unset_required) == 0
    error_message = "Settings whose default only works on one machine are not set: ${join(", ", local.unset_required)}."
  }
  precondition {
    condition     = alltrue([for job, j in var.jobs : j.parallelism <= lookup(var.partitions, local.spec[job].source, 0)])
    error_message = "A job's parallelism exceeds its source topic's partitions (idle source readers hold back watermarks)."
  }
  precondition {
    condition     = alltrue([for job, j in var.jobs : j.taskmanagers * var.slots_per_taskmanager >= j.parallelism])
    error_message = "Not enough task slots for the parallelism."
  }
}

output "consumer_groups" {
  description = "Per job's consumer group: the source topic and the parallelism (its readers)."
  value       = { for job, j in var.jobs : local.spec[job].group => { component = "${job}-job", topics = [local.spec[job].source], max_replicas = j.parallelism } }
}

output "checkpoints" {
  description = "Per job: where its checkpoints, savepoints and HA metadata go."
  value       = { for job, j in var.jobs : job => "${var.checkpoint_uri}/vigil-${job}" }
}

output "slots" {
  description = "Task slots per job and in all."
  value       = { per_job = { for job, j in var.jobs : job => j.taskmanagers * var.slots_per_taskmanager }, total = sum([for j in values(var.jobs) : j.taskmanagers * var.slots_per_taskmanager]) }
}
