# ClickHouse on the Altinity operator: a ClickHouseKeeperInstallation (Keeper spread over the zones), a
# ClickHouseInstallation with `shards` shards and one replica of each in every zone, and a migration Job that creates
# the database with the Replicated engine and applies Vigil's migrations with replicated table engines
# (files/migrate.py).

locals {
  keeper_host = "keeper-${var.name}"
  selector    = { "app.kubernetes.io/part-of" = "vigil", "app.kubernetes.io/name" = "clickhouse" }
  pool        = var.pools["clickhouse"]
  script      = file("${path.module}/files/migrate.py")
  job_name    = "vigil-clickhouse-migrate-${substr(sha256(join("|", [local.script, var.migration.image, var.database])), 0, 10)}"
  password    = "${var.namespace}/${var.user.password_secret}/${var.user.password_key}"

  pod_security = { runAsNonRoot = true, runAsUser = 101, runAsGroup = 101, fsGroup = 101, seccompProfile = { type = "RuntimeDefault" } }
  container_security = {
    allowPrivilegeEscalation = false
    runAsNonRoot             = true
    capabilities             = { drop = ["ALL"] }
    seccompProfile           = { type = "RuntimeDefault" }
  }
  volume_spec = merge({
    accessModes = ["ReadWriteOnce"]
    resources   = { requests = { storage = var.storage.size } }
  }, var.storage.class == null ? {} : { storageClassName = var.storage.class })

  keeper = {
    apiVersion = "clickhouse-keeper.altinity.com/v1"
    kind       = "ClickHouseKeeperInstallation"
    metadata   = { name = var.name, namespace = var.namespace, labels = local.selector }
    spec = {
      defaults = { templates = { podTemplate = "keeper", dataVolumeClaimTemplate = "keeper-data" } }
      configuration = {
        clusters = [{ name = "keeper", layout = { replicasCount = var.keeper_replicas } }]
      }
      templates = {
        podTemplates = [{
          name = "keeper"
          spec = {
            nodeSelector    = local.pool.node_selector
            tolerations     = local.pool.tolerations
            securityContext = local.pod_security
            topologySpreadConstraints = [{
              maxSkew           = 1
              topologyKey       = var.zone_key
              whenUnsatisfiable = "DoNotSchedule"
              labelSelector     = { matchLabels = { "clickhouse-keeper.altinity.com/chk" = var.name } }
            }]
            containers = [{
              name            = "clickhouse-keeper"
              image           = var.keeper_image
              resources       = { requests = { cpu = "1", memory = "2Gi" }, limits = { cpu = "1", memory = "2Gi" } }
              securityContext = local.container_security
            }]
          }
        }]
        volumeClaimTemplates = [{ name = "keeper-data", spec = merge(local.volume_spec, { resources = { requests = { storage = "20Gi" } } }) }]
      }
    }
  }

  installation = {
    apiVersion = "clickhouse.altinity.com/v1"
    kind       = "ClickHouseInstallation"
    metadata   = { name = var.name, namespace = var.namespace, labels = local.selector }
    spec = {
      defaults = { templates = { dataVolumeClaimTemplate = "data" } }
      configuration = {
        zookeeper = { nodes = [{ host = local.keeper_host, port = 2181 }] }
        users = {
          "${var.user.name}/k8s_secret_password" = local.password
          "${var.user.name}/networks/ip"         = ["0.0.0.0/0", "::/0"]
          "${var.user.name}/profile"             = "default"
          "${var.user.name}/quota"               = "default"
          "${var.user.name}/access_management"   = 1
        }
        clusters = [{
          name = "vigil"
          layout = {
            shardsCount = var.shards
            replicas    = [for i, zone in var.zones : { name = "r${i}", templates = { podTemplate = "clickhouse-r${i}" } }]
          }
        }]
      }
      templates = {
        podTemplates = [for i, zone in var.zones : {
          name            = "clickhouse-r${i}"
          zone            = { key = var.zone_key, values = [zone] }
          podDistribution = [{ type = "ClickHouseAntiAffinity", scope = "ClickHouseInstallation" }]
          spec = {
            nodeSelector    = local.pool.node_selector
            tolerations     = local.pool.tolerations
            securityContext = local.pod_security
            containers = [{
              name            = "clickhouse"
              image           = var.image
              resources       = { requests = { cpu = var.resources.cpu, memory = var.resources.memory }, limits = { cpu = var.resources.cpu, memory = var.resources.memory } }
              securityContext = local.container_security
            }]
          }
        }]
        volumeClaimTemplates = [{ name = "data", spec = local.volume_spec }]
      }
    }
  }

  migration_script = {
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "vigil-clickhouse-migrate", namespace = var.namespace, labels = local.selector }
    data       = { "migrate.py" = local.script }
  }

  # The migration Job accepts no connections.
  migration_network_policy = {
    apiVersion = "networking.k8s.io/v1"
    kind       = "NetworkPolicy"
    metadata   = { name = "vigil-clickhouse-migrate", namespace = var.namespace, labels = local.selector }
    spec = {
      podSelector = { matchLabels = merge(local.selector, { "app.kubernetes.io/component" = "migration" }) }
      policyTypes = ["Ingress"]
      ingress     = []
    }
  }

  migration_job = {
    apiVersion = "batch/v1"
    kind       = "Job"
    metadata   = { name = local.job_name, namespace = var.namespace, labels = merge(local.selector, { "app.kubernetes.io/component" = "migration" }) }
    spec = {
      backoffLimit            = 6
      ttlSecondsAfterFinished = 86400
      template = {
        metadata = { labels = merge(local.selector, { "app.kubernetes.io/component" = "migration" }) }
        spec = {
          restartPolicy                = "OnFailure"
          automountServiceAccountToken = false
          securityContext              = { runAsNonRoot = true, runAsUser = 10001, runAsGroup = 10001, seccompProfile = { type = "RuntimeDefault" } }
          nodeSelector                 = var.pools["services"].node_selector
          tolerations                  = var.pools["services"].tolerations
          containers = [{
            name            = "migrate"
            image           = var.migration.image
            imagePullPolicy = "IfNotPresent"
            command         = ["python", "/etc/vigil/migrate/migrate.py"]
            env = concat(
              [for k in sort(keys(var.common_env)) : { name = k, value = var.common_env[k] }],
              [
                { name = "VIGIL_DATA_DIR", value = "/tmp/vigil" },
                { name = "VIGIL_CLICKHOUSE_TTL_DAYS", value = tostring(var.migration.ttl_days) },
                { name = "VIGIL_CLICKHOUSE_DSN", valueFrom = { secretKeyRef = { name = var.migration.dsn_secret, key = var.migration.dsn_key } } },
              ],
            )
            resources       = { requests = { cpu = "250m", memory = "256Mi" }, limits = { cpu = "500m", memory = "512Mi" } }
            securityContext = merge(local.container_security, { readOnlyRootFilesystem = true })
            volumeMounts = [
              { name = "script", mountPath = "/etc/vigil/migrate", readOnly = true },
              { name = "tmp", mountPath = "/tmp" },
            ]
          }]
          volumes = [
            { name = "script", configMap = { name = "vigil-clickhouse-migrate" } },
            { name = "tmp", emptyDir = { sizeLimit = "100Mi" } },
          ]
        }
      }
    }
  }
}
