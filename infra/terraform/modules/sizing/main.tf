# The sizing model: replicas, partitions, GPUs, Flink slots, ClickHouse shards and Kafka brokers from the camera count,
# the sampling rate and per-component capacities measured by the load scripts (capacities.json, each figure with its
# source; figures that could not be measured here are marked there as assumptions). Every part is sized to run at
# (1 - headroom) of its measured capacity; autoscaled parts may grow by burst_factor, and every topic they consume
# gets at least that many partitions, so no consumer group ever has more members than a topic has partitions.

locals {
  measured = jsondecode(file("${path.module}/../../capacities.json"))
  cap      = merge({ for name, c in local.measured.capacities : name => c.value }, var.capacities)
  registry = var.topic_partitions != null ? var.topic_partitions : { for name, t in jsondecode(file("${path.module}/../kafka-topics/topics.auto.json")).topics : name => t.partitions }
  use      = 1 - var.headroom

  frames_per_s        = var.cameras * var.fps_per_camera
  track_records_per_s = var.cameras * local.cap.reid_records_per_s_per_camera
  rows_per_s          = local.frames_per_s * local.cap.rows_per_frame + local.track_records_per_s

  triton_capacity = var.triton_on_gpu ? local.cap.triton_gpu_frames_per_s_per_gpu : local.cap.triton_cpu_frames_per_s_per_pod

  steady = {
    ingest     = max(var.min_replicas, ceil(var.cameras / (local.cap.ingest_cameras_per_pod * local.use)))
    infer      = max(var.min_replicas, ceil(local.frames_per_s / (local.cap.infer_frames_per_s_per_pod * local.use)))
    reid_embed = max(var.min_replicas, ceil(local.frames_per_s / (local.cap.reid_embed_frames_per_s_per_pod * local.use)))
    sink       = max(var.min_replicas, ceil(local.rows_per_s / (local.cap.sink_rows_per_s_per_pod * local.use)))
    triton     = max(var.min_replicas, ceil(local.frames_per_s / (local.triton_capacity * local.use)))
  }
  max_replicas = { for name, n in local.steady : name => ceil(n * var.burst_factor) }

  parallelism = {
    anomaly = ceil(local.frames_per_s / (local.cap.anomaly_records_per_s_per_slot * local.use))
    traffic = ceil(local.frames_per_s / (local.cap.traffic_records_per_s_per_slot * local.use))
    reid    = ceil(local.track_records_per_s / (local.cap.reid_job_records_per_s_per_slot * local.use))
  }
  taskmanagers = { for job, p in local.parallelism : job => ceil(p / var.flink_slots_per_taskmanager) }

  # Partitions: at least the registry's, and at least the most members any consumer of the topic can have.
  # The sink reads every topic (one group), so every topic gets at least its maximum.
  sink_max = local.max_replicas.sink
  partitions = merge({ for name, p in local.registry : name => max(p, local.sink_max) }, {
    "frames.v1"     = max(local.registry["frames.v1"], local.sink_max, local.max_replicas.infer)
    "detections.v1" = max(local.registry["detections.v1"], local.sink_max, local.max_replicas.reid_embed, local.parallelism.anomaly, local.parallelism.traffic)
    "tracks.v1"     = max(local.registry["tracks.v1"], local.sink_max, local.parallelism.reid)
  })

  # ClickHouse: shards by insert rate, one replica per zone (at least 2, so a node can be lost).
  clickhouse_shards   = ceil(local.rows_per_s / (local.cap.clickhouse_rows_per_s_per_shard * local.use))
  clickhouse_replicas = max(2, var.zones)

  # Kafka: bytes in (FrameRef + DetectionBatch per frame, track records), written RF times, read by every consumer
  # group: frames.v1 by infer, evidence and the console; detections.v1 by the sink, the embed service, evidence, the
  # anomaly and traffic jobs and the console.
  mb_in           = (local.frames_per_s * (local.cap.frameref_bytes + local.cap.detection_batch_bytes) + local.track_records_per_s * local.cap.track_record_bytes) / 1000000
  mb_out          = (local.frames_per_s * (3 * local.cap.frameref_bytes + 6 * local.cap.detection_batch_bytes) + local.track_records_per_s * 2 * local.cap.track_record_bytes) / 1000000
  broker_mb_per_s = local.mb_in * var.kafka_replication_factor + local.mb_out + local.mb_in * (var.kafka_replication_factor - 1)
  brokers_needed  = max(3, var.kafka_replication_factor, ceil(local.broker_mb_per_s / (local.cap.broker_mb_per_s * local.use)))
  brokers         = ceil(local.brokers_needed / var.zones) * var.zones
}
