# One FlinkDeployment (application mode) per PyFlink job: PythonDriver runs `python -m jobs.<job>`, checkpoints,
# savepoints and HA metadata go to object storage, the operator restores from them on upgrade (last-state), and the
# pods run on the flink pool. The jobs read their parallelism from VIGIL_FLINK_PARALLELISM, set here to the
# FlinkDeployment's.

locals {
  known    = jsondecode(file("${path.module}/../services/settings.auto.json")).components
  registry = jsondecode(file("${path.module}/../kafka-topics/topics.auto.json")).topics
  carrying = { for record in ["DetectionBatch", "TrackSummary"] :
  record => one([for name, t in local.registry : name if contains(t.records, record)]) }

  spec = {
    anomaly = { module = "jobs.anomaly", group = "vigil-anomaly", source = local.carrying["DetectionBatch"], component = "anomaly-job" }
    reid    = { module = "jobs.reid", group = "vigil-reid", source = local.carrying["TrackSummary"], component = "reid-job" }
    traffic = { module = "jobs.traffic", group = "vigil-traffic", source = local.carrying["DetectionBatch"], component = "traffic-job" }
  }
  pool           = var.pools["flink"]
  registry_mount = var.anomaly_registry_claim == null ? {} : { VIGIL_ANOMALY_REGISTRY = "/var/lib/vigil-registry" }

  env = { for job, j in var.jobs : job => merge(var.common_env, {
    VIGIL_DATA_DIR          = "/tmp/vigil"
    VIGIL_FLINK_PARALLELISM = tostring(j.parallelism)
  }, job == "anomaly" ? local.registry_mount : {}, lookup(var.settings, job, {})) }
  reads      = { for job, j in var.jobs : job => local.known[local.spec[job].component] }
  secret_env = { for job, j in var.jobs : job => { for k, ref in var.secret_env : k => ref if contains(keys(local.reads[job]), k) } }

  unknown_settings = flatten([for job, j in var.jobs : [for k in keys(local.env[job]) : "${job}: ${k}" if !contains(keys(local.reads[job]), k)]])
  unset_required = flatten([for job, j in var.jobs : [
    for k, s in local.reads[job] : "${job}: ${k}" if s.required_in_cluster && !contains(concat(keys(local.env[job]), keys(local.secret_env[job])), k)
  ]])

  manifests = [for job, j in var.jobs : {
    apiVersion = "flink.apache.org/v1beta1"
    kind       = "FlinkDeployment"
    metadata = {
      name      = "vigil-${job}"
      namespace = var.namespace
      labels    = { "app.kubernetes.io/name" = "vigil-${job}", "app.kubernetes.io/part-of" = "vigil", "app.kubernetes.io/component" = "flink-job" }
      annotations = {
        "vigil.io/consumer-group" = local.spec[job].group
        "vigil.io/consumes"       = local.spec[job].source
        "vigil.io/max-replicas"   = tostring(j.parallelism)
      }
    }
    spec = {
      image          = var.image
      flinkVersion   = var.flink_version
      serviceAccount = var.service_account_name
      mode           = "native"
      flinkConfiguration = {
        "taskmanager.numberOfTaskSlots"                             = tostring(var.slots_per_taskmanager)
        "parallelism.default"                                       = tostring(j.parallelism)
        "state.backend.type"                                        = "rocksdb"
        "execution.checkpointing.incremental"                       = "true"
        "execution.checkpointing.dir"                               = "${var.checkpoint_uri}/vigil-${job}/checkpoints"
        "execution.checkpointing.savepoint-dir"                     = "${var.checkpoint_uri}/vigil-${job}/savepoints"
        "execution.checkpointing.externalized-checkpoint-retention" = "RETAIN_ON_CANCELLATION"
        "high-availability.type"                                    = "kubernetes"
        "high-availability.storageDir"                              = "${var.checkpoint_uri}/vigil-${job}/ha"
        "kubernetes.operator.savepoint.history.max.count"           = "5"
        "kubernetes.operator.periodic.savepoint.interval"           = "6h"
        # Flink's Prometheus reporter (plugins/metrics-prometheus): Flink's own metrics and the jobs' vigil_* user
        # metrics (events by kind, matches, passages, dead letters) on 9249 of every JobManager and TaskManager pod
        "metrics.reporter.prom.factory.class" = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        "metrics.reporter.prom.port"          = "9249"
      }
      jobManager = {
        replicas = 1
        resource = { cpu = 1, memory = "2048m" }
      }
      taskManager = {
        replicas = j.taskmanagers
        resource = { cpu = var.slots_per_taskmanager, memory = "${var.slots_per_taskmanager * var.taskmanager_memory_per_slot_mb + 1024}m" }
      }
      podTemplate = {
        metadata = { labels = { "app.kubernetes.io/part-of" = "vigil", "vigil.io/job" = job }, annotations = {
          "prometheus.io/scrape" = "true", "prometheus.io/port" = "9249", "prometheus.io/path" = "/metrics"
        } }
        spec = {
          nodeSelector    = local.pool.node_selector
          tolerations     = local.pool.tolerations
          securityContext = { runAsNonRoot = true, runAsUser = 9999, runAsGroup = 9999, fsGroup = 9999, seccompProfile = { type = "RuntimeDefault" } }
          topologySpreadConstraints = [{
            maxSkew           = 1
            topologyKey       = "topology.kubernetes.io/zone"
            whenUnsatisfiable = "ScheduleAnyway"
            labelSelector     = { matchLabels = { "vigil.io/job" = job } }
          }]
          containers = [{
            name = "flink-main-container"
            env = concat(
              [for k in sort(keys(local.env[job])) : { name = k, value = local.env[job][k] }],
              [for k in sort(keys(local.secret_env[job])) : { name = k, valueFrom = { secretKeyRef = { name = local.secret_env[job][k].secret, key = local.secret_env[job][k].key } } }],
              [{ name = "ENABLE_BUILT_IN_PLUGINS", value = "flink-s3-fs-presto-${var.flink_release}.jar" }],
            )
            securityContext = {
              allowPrivilegeEscalation = false
              runAsNonRoot             = true
              capabilities             = { drop = ["ALL"] }
              seccompProfile           = { type = "RuntimeDefault" }
            }
            volumeMounts = concat(
              [{ name = "cameras", mountPath = "/etc/vigil/cameras", readOnly = true }],
              [for _ in(job == "anomaly" && var.anomaly_registry_claim != null ? [1] : []) : { name = "registry", mountPath = "/var/lib/vigil-registry", readOnly = true }],
            )
          }]
          volumes = concat(
            [{ name = "cameras", configMap = { name = "vigil-cameras" } }],
            [for _ in(job == "anomaly" && var.anomaly_registry_claim != null ? [1] : []) : { name = "registry", persistentVolumeClaim = { claimName = var.anomaly_registry_claim, readOnly = true } }],
          )
        }
      }
      job = {
        jarURI      = "local:///opt/flink/opt/flink-python-${var.flink_release}.jar"
        entryClass  = "org.apache.flink.client.python.PythonDriver"
        args        = ["-pym", local.spec[job].module, "--cameras", "/etc/vigil/cameras/cameras.yaml", "--checkpoint-dir", "${var.checkpoint_uri}/vigil-${job}/checkpoints", "--restore", "none", "--group", local.spec[job].group]
        parallelism = j.parallelism
        upgradeMode = "last-state"
        state       = "running"
      }
    }
  }]
}
