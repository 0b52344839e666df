# Node groups sized by the same model as the pods (modules/sizing), with the pools' labels and taints from
# modules/node-pools, so a GPU node's taint and a GPU pod's toleration come from one definition.

module "pools" {
  source = "../../modules/node-pools"
}

module "sizing" {
  source         = "../../modules/sizing"
  cameras        = var.cameras
  fps_per_camera = var.fps_per_camera
  zones          = length(var.private_subnets)
}

locals {
  zones       = sort(keys(var.private_subnets))
  s           = module.sizing
  flink_slots = sum([for f in values(local.s.flink) : f.taskmanagers * 2])

  # vCPUs each pool needs at steady state and at most (pods sized per 2 cores, as measured).
  services_cpu     = 2 * (local.s.replicas.ingest + local.s.replicas.infer + local.s.replicas.reid_embed + local.s.replicas.sink) + 6
  services_cpu_max = 2 * (local.s.replicas.ingest + local.s.max_replicas.infer + local.s.max_replicas.reid_embed + local.s.max_replicas.sink) + 6

  nodes = {
    system   = { desired = 2, min = 2, max = 4 }
    services = { desired = ceil(local.services_cpu / var.node_groups.services.vcpus * 1.15), min = 1, max = ceil(local.services_cpu_max / var.node_groups.services.vcpus * 1.15) }
    flink    = { desired = ceil((local.flink_slots + 3) / var.node_groups.flink.vcpus * 1.15), min = 1, max = ceil((local.flink_slots + 3) / var.node_groups.flink.vcpus * 1.15) + 1 }
    gpu      = { desired = ceil(local.s.triton.gpus / var.node_groups.gpu.gpus), min = ceil(local.s.triton.gpus / var.node_groups.gpu.gpus), max = ceil(local.s.triton.max_gpus / var.node_groups.gpu.gpus) }
  }
  # Zoned pools: one node group per zone; ClickHouse one replica per zone, Kafka brokers (+ controllers) spread evenly.
  zoned = {
    clickhouse = ceil(local.s.clickhouse.shards)
    kafka      = var.msk.enabled ? 0 : ceil((local.s.kafka.brokers + 3) / length(local.zones))
  }
}
