# Pins the arithmetic on fixed capacities (not capacities.json, which changes when the load scripts are re-run).
variables {
  cameras        = 1000
  fps_per_camera = 5
  headroom       = 0.3
  burst_factor   = 2
  zones          = 3
  capacities = {
    ingest_cameras_per_pod          = 20
    infer_frames_per_s_per_pod      = 20
    reid_embed_frames_per_s_per_pod = 20
    sink_rows_per_s_per_pod         = 7000
    triton_gpu_frames_per_s_per_gpu = 400
    triton_cpu_frames_per_s_per_pod = 20
    anomaly_records_per_s_per_slot  = 166.7
    traffic_records_per_s_per_slot  = 629.5
    reid_job_records_per_s_per_slot = 1000
    reid_records_per_s_per_camera   = 1.5
    rows_per_frame                  = 2
    clickhouse_rows_per_s_per_shard = 294117
    frameref_bytes                  = 216
    detection_batch_bytes           = 551
    track_record_bytes              = 2600
    broker_mb_per_s                 = 14
  }
  topic_partitions = {
    "frames.v1"  = 4, "detections.v1" = 4, "tracks.v1" = 2, "camera-status.v1" = 1, "events.v1" = 2,
    "traffic.v1" = 2, "incidents.v1" = 2, "deadletter.v1" = 1
  }
}

run "thousand_cameras" {
  command = plan

  # 1000 x 5 = 5000 frames/s; rows = 5000 x 2 + 1000 x 1.5 = 11500/s
  assert {
    condition     = output.load.frames_per_s == 5000 && output.load.rows_per_s == 11500
    error_message = "Load: ${jsonencode(output.load)}"
  }
  # ingest ceil(1000 / 14) = 72; infer ceil(5000 / 14) = 358; sink ceil(11500 / 4900) = 3
  assert {
    condition     = output.replicas.ingest == 72 && output.replicas.infer == 358 && output.replicas.reid_embed == 358 && output.replicas.sink == 3
    error_message = "Replicas: ${jsonencode(output.replicas)}"
  }
  # GPUs ceil(5000 / 280) = 18, up to 36
  assert {
    condition     = output.triton.gpus == 18 && output.triton.max_gpus == 36
    error_message = "Triton: ${jsonencode(output.triton)}"
  }
  # anomaly ceil(5000 / 116.69) = 43 slots on 22 TaskManagers of 2; traffic ceil(5000 / 440.65) = 12; re-ID ceil(1500 / 700) = 3
  assert {
    condition     = output.flink.anomaly.parallelism == 43 && output.flink.anomaly.taskmanagers == 22 && output.flink.traffic.parallelism == 12 && output.flink.reid.parallelism == 3
    error_message = "Flink: ${jsonencode(output.flink)}"
  }
  # frames.v1 >= infer max 716; detections.v1 >= reid-embed max 716; tracks.v1 >= sink max 6; the rest >= 6
  assert {
    condition     = output.partitions["frames.v1"] == 716 && output.partitions["detections.v1"] == 716 && output.partitions["tracks.v1"] == 6 && output.partitions["deadletter.v1"] == 6
    error_message = "Partitions: ${jsonencode(output.partitions)}"
  }
  # 11500 rows/s against 205882 per shard: 1 shard, a replica in each of 3 zones
  assert {
    condition     = output.clickhouse.shards == 1 && output.clickhouse.replicas == 3
    error_message = "ClickHouse: ${jsonencode(output.clickhouse)}"
  }
  # in = (5000 x 767 + 1500 x 2600) / 1e6 = 7.735 MB/s; out = (5000 x 3954 + 1500 x 5200) / 1e6 = 27.57;
  # all = 7.735 x 3 + 27.57 + 7.735 x 2 = 66.245 MB/s against 9.8 per broker: 7, so 9 in 3 zones
  assert {
    condition     = abs(output.load.kafka_mb_in_per_s - 7.735) < 0.001 && abs(output.load.broker_mb_per_s - 66.245) < 0.001 && output.kafka.brokers == 9
    error_message = "Kafka: ${jsonencode(output.load)} ${jsonencode(output.kafka)}"
  }
}

run "ten_cameras_on_cpu" {
  command = plan
  variables {
    cameras       = 10
    triton_on_gpu = false
  }

  # 50 frames/s: every scaled service at its floor of 2 or a little above; CPU Triton ceil(50 / 14) = 4
  assert {
    condition     = output.replicas.ingest == 2 && output.replicas.infer == 4 && output.triton.pods == 4 && output.triton.gpus == 0
    error_message = "Small deployment: ${jsonencode(output.replicas)} ${jsonencode(output.triton)}"
  }
  assert {
    condition     = output.partitions["frames.v1"] == 8 && output.partitions["camera-status.v1"] == 4
    error_message = "Partitions cover infer's burst (8) and the sink's (4): ${jsonencode(output.partitions)}"
  }
}

run "brokers_by_throughput_in_whole_zones" {
  command = plan
  variables {
    cameras = 10000
  }
  # in 77.35 MB/s; all = 77.35 x 3 + out + 77.35 x 2; out = (50000 x (648 + 3306) + 15000 x 5200) / 1e6 = 275.7
  # total 662.45 / 9.8 = 68 brokers -> 69 (a multiple of 3 zones)
  assert {
    condition     = output.kafka.brokers == 69
    error_message = "Brokers: ${jsonencode(output.kafka)} for ${jsonencode(output.load)}"
  }
}

run "headroom_out_of_range_is_refused" {
  command = plan
  variables {
    headroom = 0.95
  }
  expect_failures = [var.headroom]
}

run "fractional_cameras_are_refused" {
  command = plan
  variables {
    cameras = 2.5
  }
  expect_failures = [var.cameras]
}
