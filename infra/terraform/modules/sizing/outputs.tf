output "load" {
  description = "What the cameras offer: frames/s, rows/s into ClickHouse, track records/s, and Kafka MB/s in, out and in all on the brokers."
  value = {
    frames_per_s        = local.frames_per_s
    rows_per_s          = local.rows_per_s
    track_records_per_s = local.track_records_per_s
    kafka_mb_in_per_s   = local.mb_in
    kafka_mb_out_per_s  = local.mb_out
    broker_mb_per_s     = local.broker_mb_per_s
  }
}

output "replicas" {
  description = "Steady-state replicas per service (KEDA's minReplicaCount; ingest and Triton are fixed/queue-scaled the same way)."
  value       = local.steady
}

output "max_replicas" {
  description = "Most replicas per autoscaled service (KEDA's maxReplicaCount): steady-state x burst_factor."
  value       = local.max_replicas
}

output "triton" {
  description = "Triton pods, and the GPUs they take (one each when triton_on_gpu)."
  value = {
    pods     = local.steady.triton
    max_pods = local.max_replicas.triton
    gpus     = var.triton_on_gpu ? local.steady.triton : 0
    max_gpus = var.triton_on_gpu ? local.max_replicas.triton : 0
    on_gpu   = var.triton_on_gpu
  }
}

output "flink" {
  description = "Per job: parallelism (= task slots) and TaskManager pods."
  value = {
    for job, p in local.parallelism : job => {
      parallelism  = p
      slots        = p
      taskmanagers = local.taskmanagers[job]
    }
  }
}

output "partitions" {
  description = "Partitions per topic: never below the registry's, never below the most consumers of the topic."
  value       = local.partitions
}

output "clickhouse" {
  description = "ClickHouse shards (by insert rate) and replicas per shard (one per zone)."
  value = {
    shards   = local.clickhouse_shards
    replicas = local.clickhouse_replicas
  }
}

output "kafka" {
  description = "Kafka brokers (a multiple of the zones, at least 3 and at least the replication factor) and the replication factor."
  value = {
    brokers            = local.brokers
    replication_factor = var.kafka_replication_factor
  }
}

output "capacities" {
  description = "The capacities used (capacities.json with the overrides)."
  value       = local.cap
}
