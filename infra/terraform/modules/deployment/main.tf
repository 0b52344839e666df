# The whole deployment as data: sizing from the camera file and the measured capacities, then every Kubernetes object
# (namespaces, ServiceAccount, Kafka and its topics, Triton, the services, the Flink jobs, ClickHouse), grouped by
# what must exist before them. Provider-free: the roots apply these outputs (see ../../roots).

module "pools" {
  source = "../node-pools"
  pools  = var.pools == null ? null : var.pools
}

locals {
  cameras      = yamldecode(var.cameras_yaml).cameras
  camera_count = length(local.cameras)
  fps          = sum([for c in local.cameras : try(tonumber(c.fps), 5)]) / local.camera_count
}

module "sizing" {
  source                      = "../sizing"
  cameras                     = local.camera_count
  fps_per_camera              = local.fps
  zones                       = length(var.zones)
  headroom                    = var.sizing.headroom
  burst_factor                = var.sizing.burst_factor
  min_replicas                = var.sizing.min_replicas
  triton_on_gpu               = var.sizing.triton_on_gpu
  flink_slots_per_taskmanager = var.sizing.flink_slots_per_taskmanager
  kafka_replication_factor    = var.kafka.replication_factor
  capacities                  = var.sizing.capacities
}

module "kafka_cluster" {
  source             = "../kafka-cluster"
  count              = var.kafka.in_cluster ? 1 : 0
  namespace          = var.kafka_namespace
  brokers            = module.sizing.kafka.brokers
  replication_factor = var.kafka.replication_factor
  pools              = module.pools.pools
}

locals {
  kafka_bootstrap = var.kafka.in_cluster ? module.kafka_cluster[0].bootstrap : var.kafka.bootstrap
}

module "topics" {
  source             = "../kafka-topics"
  namespace          = var.kafka_namespace
  partitions         = module.sizing.partitions
  replication_factor = var.kafka.replication_factor
  topic_namespace    = var.kafka.topic_namespace
}

module "triton" {
  source           = "../triton"
  namespace        = var.namespace
  image            = var.images.triton
  model_repository = var.model_repository
  on_gpu           = var.sizing.triton_on_gpu
  replicas         = module.sizing.triton.pods
  max_replicas     = module.sizing.triton.max_pods
  prometheus_url   = var.prometheus_url
  pools            = module.pools.pools
  resources        = var.sizing.triton_on_gpu ? { cpu = "8", memory = "16Gi" } : { cpu = "2", memory = "4Gi" }
}

module "clickhouse" {
  source     = "../clickhouse"
  namespace  = var.namespace
  shards     = module.sizing.clickhouse.shards
  zones      = var.zones
  pools      = module.pools.pools
  common_env = local.common_env
  migration  = { image = var.images.vigil, dsn_secret = var.clickhouse_dsn_secret.secret, dsn_key = var.clickhouse_dsn_secret.key }
}

locals {
  common_env = {
    VIGIL_KAFKA_EMBEDDED           = "false"
    VIGIL_KAFKA_BOOTSTRAP          = local.kafka_bootstrap
    VIGIL_KAFKA_REPLICATION_FACTOR = tostring(var.kafka.replication_factor)
    VIGIL_KAFKA_SESSION_TIMEOUT_MS = tostring(var.kafka.session_timeout_ms)
    VIGIL_KAFKA_TOPICS             = module.topics.partitions_json
    VIGIL_TOPIC_NAMESPACE          = var.kafka.topic_namespace
    VIGIL_TRITON_EMBEDDED          = "false"
    VIGIL_TRITON_URL               = module.triton.grpc_endpoint
    VIGIL_CLICKHOUSE_EMBEDDED      = "false"
    VIGIL_PROMETHEUS_EMBEDDED      = "false"
    VIGIL_FRAME_STORE              = var.frame_store_uri
    VIGIL_MODEL_REPOSITORY         = "/opt/vigil/models"
    VIGIL_FLINK_LIB_DIR            = "/opt/vigil/jars"
  }
  secret_env = merge(
    { VIGIL_CLICKHOUSE_DSN = var.clickhouse_dsn_secret },
    var.kafka.config_secret == null ? {} : { VIGIL_KAFKA_CONFIG = var.kafka.config_secret },
    var.secret_env,
  )
  job_names = ["anomaly", "reid", "traffic"]
}

module "services" {
  source                    = "../services"
  namespace                 = var.namespace
  image                     = var.images.vigil
  common_env                = local.common_env
  secret_env                = local.secret_env
  settings                  = { for k, v in var.settings : k => v if !contains(local.job_names, k) }
  replicas                  = module.sizing.replicas
  max_replicas              = module.sizing.max_replicas
  partitions                = module.sizing.partitions
  topic_namespace           = var.kafka.topic_namespace
  kafka_bootstrap           = local.kafka_bootstrap
  keda_kafka_authentication = var.kafka.keda_authentication
  capacities = {
    infer      = module.sizing.capacities.infer_frames_per_s_per_pod
    reid_embed = module.sizing.capacities.reid_embed_frames_per_s_per_pod
    sink       = module.sizing.capacities.sink_rows_per_s_per_pod
  }
  cameras_yaml  = var.cameras_yaml
  ingest_shards = module.sizing.replicas.ingest
  feed_outputs  = var.feed_outputs
  console       = { enabled = var.console_enabled }
  reid_api      = { enabled = var.reid_api_enabled }
  pools         = module.pools.pools
}

module "flink" {
  source                 = "../flink-jobs"
  namespace              = var.namespace
  image                  = var.images.flink
  checkpoint_uri         = var.checkpoint_uri
  jobs                   = { for job, f in module.sizing.flink : job => { parallelism = f.parallelism, taskmanagers = f.taskmanagers } }
  slots_per_taskmanager  = var.sizing.flink_slots_per_taskmanager
  common_env             = local.common_env
  secret_env             = local.secret_env
  settings               = { for k, v in var.settings : k => v if contains(local.job_names, k) }
  partitions             = module.sizing.partitions
  anomaly_registry_claim = var.anomaly_registry_claim
  pools                  = module.pools.pools
}

locals {
  namespaces = concat([{
    apiVersion = "v1"
    kind       = "Namespace"
    metadata = { name = var.namespace, labels = {
      "app.kubernetes.io/part-of"          = "vigil"
      "pod-security.kubernetes.io/enforce" = "baseline"
      "pod-security.kubernetes.io/warn"    = "restricted"
    } }
    }], [for _ in(var.kafka.in_cluster || var.kafka.manage_topics_with_strimzi ? [1] : []) : {
    apiVersion = "v1"
    kind       = "Namespace"
    metadata = { name = var.kafka_namespace, labels = {
      "app.kubernetes.io/part-of"          = "vigil"
      "pod-security.kubernetes.io/enforce" = "baseline"
    } }
  }])

  service_account = {
    apiVersion                   = "v1"
    kind                         = "ServiceAccount"
    metadata                     = { name = "vigil", namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "vigil" }, annotations = var.service_account_annotations }
    automountServiceAccountToken = false
  }

  core = concat([local.service_account], module.services.manifests, module.triton.manifests, module.clickhouse.manifests)
  custom = concat(
    flatten([for k in module.kafka_cluster : k.manifests]),
    [for m in module.topics.manifests : m if var.kafka.in_cluster || var.kafka.manage_topics_with_strimzi],
    module.flink.manifests,
    module.clickhouse.custom_resources,
  )
  consumer_groups = merge(module.services.consumer_groups, module.flink.consumer_groups)
}

check "clickhouse_single_shard" {
  assert {
    condition     = module.sizing.clickhouse.shards == 1
    error_message = "The sizing asks for ${module.sizing.clickhouse.shards} ClickHouse shards: the migrations create no Distributed tables yet, so queries on one node see only its shard's rows."
  }
}
