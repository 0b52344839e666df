# Triton: a Deployment on the GPU pool (one GPU per pod, the pool's taint tolerated) or on CPU nodes, the model
# repository from object storage, a Service for gRPC/HTTP/metrics, and a KEDA ScaledObject that scales on the mean
# time requests wait in Triton's queue (as awslabs/ai-on-eks's Triton HPA does), read from Prometheus.

locals {
  name     = "vigil-triton"
  pool     = var.on_gpu ? var.pools["gpu"] : var.pools["services"]
  selector = { "app.kubernetes.io/name" = "triton", "app.kubernetes.io/part-of" = "vigil" }
  labels   = merge(local.selector, { "app.kubernetes.io/component" = "inference-server" })
  gpu      = var.on_gpu ? { "nvidia.com/gpu" = "1" } : {}
  requests = merge({ cpu = var.resources.cpu, memory = var.resources.memory }, local.gpu)

  queue_ms_query = join("", [
    "sum(rate(nv_inference_queue_duration_us{namespace=\"${var.namespace}\",pod=~\"${local.name}-.*\"}[2m]))",
    " / clamp_min(sum(rate(nv_inference_request_success{namespace=\"${var.namespace}\",pod=~\"${local.name}-.*\"}[2m])), 1)",
    " / 1000",
  ])

  args = concat([
    "tritonserver",
    "--model-repository=${var.model_repository}",
    "--model-control-mode=explicit",
    "--exit-on-error=false",
    "--strict-readiness=true",
    "--allow-metrics=true",
    "--allow-gpu-metrics=${var.on_gpu}",
  ], [for m in var.models : "--load-model=${m}"])

  deployment = {
    apiVersion = "apps/v1"
    kind       = "Deployment"
    metadata = {
      name      = local.name
      namespace = var.namespace
      labels    = local.labels
      annotations = {
        "vigil.io/gpu" = tostring(var.on_gpu)
      }
    }
    spec = {
      selector = { matchLabels = local.selector }
      strategy = { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 0, maxSurge = 1 } }
      template = {
        metadata = {
          labels      = local.labels
          annotations = { "prometheus.io/scrape" = "true", "prometheus.io/port" = "8002", "prometheus.io/path" = "/metrics" }
        }
        spec = {
          serviceAccountName            = var.service_account_name
          automountServiceAccountToken  = false
          terminationGracePeriodSeconds = 60
          securityContext               = { runAsNonRoot = true, runAsUser = 1000, runAsGroup = 1000, fsGroup = 1000, seccompProfile = { type = "RuntimeDefault" } }
          nodeSelector                  = local.pool.node_selector
          tolerations                   = local.pool.tolerations
          topologySpreadConstraints = [{
            maxSkew           = 1
            topologyKey       = var.zone_key
            whenUnsatisfiable = "ScheduleAnyway"
            labelSelector     = { matchLabels = local.selector }
          }]
          containers = [{
            name            = "triton"
            image           = var.image
            imagePullPolicy = "IfNotPresent"
            command         = local.args
            env             = [{ name = "HOME", value = "/tmp" }]
            ports = [
              { name = "http", containerPort = 8000, protocol = "TCP" },
              { name = "grpc", containerPort = 8001, protocol = "TCP" },
              { name = "metrics", containerPort = 8002, protocol = "TCP" },
            ]
            resources      = { requests = local.requests, limits = local.requests }
            readinessProbe = { httpGet = { path = "/v2/health/ready", port = "http" }, periodSeconds = 10, failureThreshold = 3 }
            livenessProbe  = { httpGet = { path = "/v2/health/live", port = "http" }, periodSeconds = 20, failureThreshold = 3 }
            startupProbe   = { httpGet = { path = "/v2/health/ready", port = "http" }, periodSeconds = 10, failureThreshold = 60 }
            securityContext = {
              allowPrivilegeEscalation = false
              readOnlyRootFilesystem   = true
              runAsNonRoot             = true
              runAsUser                = 1000
              runAsGroup               = 1000
              capabilities             = { drop = ["ALL"] }
              seccompProfile           = { type = "RuntimeDefault" }
            }
            volumeMounts = [
              { name = "shm", mountPath = "/dev/shm" },
              { name = "tmp", mountPath = "/tmp" },
            ]
          }]
          volumes = [
            { name = "shm", emptyDir = { medium = "Memory", sizeLimit = "2Gi" } },
            { name = "tmp", emptyDir = { sizeLimit = "10Gi" } },
          ]
        }
      }
    }
  }

  service = {
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = local.name, namespace = var.namespace, labels = local.labels }
    spec = {
      type     = "ClusterIP"
      selector = local.selector
      ports = [
        { name = "http", port = 8000, targetPort = "http", protocol = "TCP" },
        { name = "grpc", port = 8001, targetPort = "grpc", protocol = "TCP" },
        { name = "metrics", port = 8002, targetPort = "metrics", protocol = "TCP" },
      ]
    }
  }

  # gRPC and HTTP from the pods of this namespace (infer, the embed service); metrics from anywhere (Prometheus).
  network_policy = {
    apiVersion = "networking.k8s.io/v1"
    kind       = "NetworkPolicy"
    metadata   = { name = local.name, namespace = var.namespace, labels = local.labels }
    spec = {
      podSelector = { matchLabels = local.selector }
      policyTypes = ["Ingress"]
      ingress = [
        {
          from  = [{ podSelector = {} }]
          ports = [{ port = 8000, protocol = "TCP" }, { port = 8001, protocol = "TCP" }]
        },
        { ports = [{ port = 8002, protocol = "TCP" }] },
      ]
    }
  }

  disruption_budget = {
    apiVersion = "policy/v1"
    kind       = "PodDisruptionBudget"
    metadata   = { name = local.name, namespace = var.namespace, labels = local.labels }
    spec       = { maxUnavailable = 1, selector = { matchLabels = local.selector } }
  }

  scaled_object = {
    apiVersion = "keda.sh/v1alpha1"
    kind       = "ScaledObject"
    metadata   = { name = local.name, namespace = var.namespace, labels = local.labels }
    spec = {
      scaleTargetRef  = { apiVersion = "apps/v1", kind = "Deployment", name = local.name }
      minReplicaCount = var.replicas
      maxReplicaCount = var.max_replicas
      pollingInterval = 15
      cooldownPeriod  = 600
      advanced = { horizontalPodAutoscalerConfig = { behavior = {
        scaleDown = { stabilizationWindowSeconds = 600, policies = [{ type = "Pods", value = 1, periodSeconds = 120 }] }
      } } }
      triggers = [{
        type       = "prometheus"
        name       = "queue-time"
        metricType = "Value"
        metadata = {
          serverAddress = var.prometheus_url
          query         = local.queue_ms_query
          threshold     = tostring(var.queue_time_target_ms)
        }
      }]
    }
  }
}
