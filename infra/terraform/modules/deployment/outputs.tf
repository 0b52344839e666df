output "manifests" {
  description = "Every object, by what must exist first: namespaces, then core objects (ServiceAccount, ConfigMaps, Deployments, StatefulSets, Services, PodDisruptionBudgets, the migration Job) and KEDA ScaledObjects, then the operators' custom resources."
  value = {
    namespaces = local.namespaces
    core       = [for m in local.core : m if m.kind != "ScaledObject"]
    custom     = concat(local.custom, [for m in local.core : m if m.kind == "ScaledObject"])
  }
}

output "sizing" {
  description = "The sizing model's result for this camera file."
  value = {
    cameras      = local.camera_count
    fps          = local.fps
    load         = module.sizing.load
    replicas     = module.sizing.replicas
    max_replicas = module.sizing.max_replicas
    triton       = module.sizing.triton
    flink        = module.sizing.flink
    partitions   = module.sizing.partitions
    clickhouse   = module.sizing.clickhouse
    kafka        = module.sizing.kafka
    ingest       = module.services.ingest_shards
  }
}

output "consumer_groups" {
  description = "Every consumer group: component, topics and the most members it can have."
  value       = local.consumer_groups
}

output "env" {
  description = "Per service: the plain VIGIL_* settings and the names of those from Secrets."
  value       = module.services.env
}

output "node_pools" {
  description = "The node pools the objects are scheduled onto (labels and taints), for the cluster's node groups."
  value       = module.pools.pools
}

output "endpoints" {
  description = "In-cluster endpoints: Kafka bootstrap, Triton gRPC and metrics, ClickHouse HTTP and Keeper, the console and the re-ID API."
  value = merge({
    kafka_bootstrap   = local.kafka_bootstrap
    triton_grpc       = module.triton.grpc_endpoint
    triton_metrics    = module.triton.metrics_endpoint
    clickhouse_http   = module.clickhouse.http_endpoint
    clickhouse_dsn    = module.clickhouse.dsn_template
    clickhouse_keeper = module.clickhouse.keeper_endpoint
    flink_checkpoints = module.flink.checkpoints
  }, module.services.endpoints)
}
