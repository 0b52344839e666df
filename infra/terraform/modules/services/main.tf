# The Vigil services as Kubernetes objects: ingest (a StatefulSet, one camera shard per pod), infer, the re-ID embed
# service and the sink (Deployments scaled by KEDA on their consumer group's lag), evidence (one instance by design),
# drift (one instance, its per-camera baselines on a volume),
# the operator console, the re-ID search API and an optional feeds sink (DATEX II / webhooks / MQTT, one instance
# with its state on a volume). Each container gets exactly the VIGIL_* settings its component reads
# (settings.auto.json, generated from the Settings classes by infra/terraform/generate.py): names it does not read
# are refused, and every setting whose default only works on one machine must be set.

locals {
  known    = jsondecode(file("${path.module}/settings.auto.json"))
  registry = jsondecode(file("${path.module}/../kafka-topics/topics.auto.json")).topics

  # Logical topic names by the record type they carry: no topic name is spelled here.
  carrying = { for record in ["FrameRef", "DetectionBatch", "Incident", "TrafficBin"] :
  record => one([for name, t in local.registry : name if contains(t.records, record)]) }
  sink_topics  = jsondecode(local.known.components["sink"]["VIGIL_SINK_TOPICS"].default)
  feeds_topics = [local.carrying["Incident"], local.carrying["TrafficBin"]]

  # What each component reads.
  reads = {
    "ingest"     = local.known.components["ingest"]
    "infer"      = local.known.components["infer"]
    "reid-embed" = local.known.components["reid-embed"]
    "sink"       = merge(local.known.components["sink"], [for o in var.sink_outputs : local.known.sink_outputs[o]]...)
    "sink-feeds" = merge(local.known.components["sink"], [for o in var.feed_outputs : local.known.sink_outputs[o]]...)
    "evidence"   = local.known.components["evidence"]
    "drift"      = local.known.components["drift"]
    "console"    = local.known.components["console"]
    "reid-api"   = local.known.components["reid-api"]
  }

  data_dir = "/var/lib/vigil"
  base_env = merge(var.common_env, { VIGIL_DATA_DIR = local.data_dir })

  # Prometheus metrics (vigil/metrics.py): every component serves /metrics on this port (the console and the re-ID API
  # their HTTP requests and live feed);
  # their pods carry the prometheus.io annotations, and the alert rules ship as ConfigMap vigil-prometheus-rules.
  metrics_port = 9400
  scraped      = ["ingest", "infer", "reid-embed", "sink", "sink-feeds", "evidence", "drift", "console", "reid-api"]
  metrics_env  = { VIGIL_METRICS_PORT = tostring(local.metrics_port), VIGIL_METRICS_HOST = "0.0.0.0" }

  cameras      = yamldecode(var.cameras_yaml).cameras
  shard_size   = ceil(length(local.cameras) / var.ingest_shards)
  shards       = chunklist(local.cameras, local.shard_size)
  camera_count = length(local.cameras)

  default_resources = {
    "ingest"     = { cpu = "2", memory = "1Gi" }
    "infer"      = { cpu = "2", memory = "1Gi" }
    "reid-embed" = { cpu = "2", memory = "1Gi" }
    "sink"       = { cpu = "2", memory = "512Mi" }
    "sink-feeds" = { cpu = "1", memory = "512Mi" }
    "evidence"   = { cpu = "2", memory = "2Gi" }
    "drift"      = { cpu = "1", memory = "512Mi" }
    "console"    = { cpu = "1", memory = "512Mi" }
    "reid-api"   = { cpu = "1", memory = "1Gi" }
  }

  # Every component: how it starts, what it consumes (consumer group from its settings), how many pods.
  all_components = {
    "ingest" = {
      kind   = "StatefulSet", command = ["vigil", "ingest", "--cameras", "/etc/vigil/cameras/shard-$(POD_INDEX).yaml"]
      topics = [], scaled = null, replicas = length(local.shards), port = null, health = null
      env    = {}
    }
    "infer" = {
      kind     = "Deployment", command = ["vigil", "infer"], topics = [local.carrying["FrameRef"]], scaled = "infer"
      replicas = null, port = null, health = null, env = {}
    }
    "reid-embed" = {
      kind   = "Deployment", command = ["vigil", "reid-embed"], topics = [local.carrying["DetectionBatch"]]
      scaled = "reid_embed", replicas = null, port = null, health = null, env = {}
    }
    "sink" = {
      kind = "Deployment", command = ["vigil", "sink"], topics = local.sink_topics, scaled = "sink", replicas = null
      port = null, health = null, env = { VIGIL_SINK_OUTPUTS = jsonencode(var.sink_outputs) }
    }
    "sink-feeds" = {
      kind = "StatefulSet", command = ["vigil", "sink"], topics = local.feeds_topics, scaled = null, replicas = 1
      port = null, health = null
      env = merge({ VIGIL_SINK_OUTPUTS = jsonencode(var.feed_outputs), VIGIL_SINK_TOPICS = jsonencode(local.feeds_topics)
        VIGIL_CONSUMER_GROUP   = "vigil-sink-feeds" }, contains(var.feed_outputs, "datex2") ? {
        VIGIL_DATEX2_HTTP_HOST = "0.0.0.0", VIGIL_DATEX2_HTTP_PORT = "18091"
      } : {})
    }
    "evidence" = {
      kind   = "Deployment", command = ["vigil", "evidence"]
      topics = [local.carrying["Incident"], local.carrying["FrameRef"], local.carrying["DetectionBatch"]]
      scaled = null, replicas = 1, port = null, health = null, env = {}
    }
    "drift" = {
      # one instance: per camera baselines on its volume, every camera's statistics in one place
      kind     = "StatefulSet", command = ["vigil", "drift"], topics = [local.carrying["DetectionBatch"]], scaled = null
      replicas = 1, port = null, health = null, env = {}
    }
    "console" = {
      kind = "Deployment", command = ["vigil", "console"], topics = [], scaled = null, replicas = var.console.replicas
      port = 18090, health = "/healthz"
      env = {
        VIGIL_CONSOLE_HOST          = "0.0.0.0"
        VIGIL_CONSOLE_PORT          = "18090"
        VIGIL_CONSOLE_USERS_FILE    = "/etc/vigil/console/users.json"
        VIGIL_CONSOLE_CAMERAS       = "/etc/vigil/cameras/cameras.yaml"
        VIGIL_CONSOLE_COOKIE_SECURE = tostring(var.console.cookie_secure)
        VIGIL_CONSOLE_ASSETS_DIR    = "/opt/vigil/console-ui/node_modules"
      }
    }
    "reid-api" = {
      kind   = "Deployment", command = ["vigil", "reid-api", "--host", "0.0.0.0", "--port", "18080"], topics = []
      scaled = null, replicas = var.reid_api.replicas, port = 18080, health = "/healthz", env = {}
    }
  }
  enabled = toset(concat(["ingest", "infer", "reid-embed", "sink", "evidence", "drift"],
    var.console.enabled ? ["console"] : [], var.reid_api.enabled ? ["reid-api"] : [],
  length(var.feed_outputs) > 0 ? ["sink-feeds"] : []))
  components = { for name, c in local.all_components : name => merge(c, {
    env          = tomap(c.env)
    strategy     = name == "evidence" ? "Recreate" : "RollingUpdate"
    service_port = name == "sink-feeds" && contains(var.feed_outputs, "datex2") ? 18091 : c.port
  }) if contains(local.enabled, name) }

  console_secret_env = var.console.enabled ? { VIGIL_CONSOLE_SECRET_KEY = var.console.secret_key_ref } : {}

  env = { for name, c in local.components : name => merge(local.base_env, contains(local.scraped, name) ? local.metrics_env : {},
  c.env, lookup(var.settings, name, {})) }
  secret_env = { for name, c in local.components : name => {
    for k, ref in merge(var.secret_env, name == "console" ? local.console_secret_env : {}) : k => ref if contains(keys(local.reads[name]), k)
  } }
  group = { for name, c in local.components : name => lookup(local.env[name], "VIGIL_CONSUMER_GROUP",
  try(local.reads[name]["VIGIL_CONSUMER_GROUP"].default, "")) }

  # Checks (reported by the manifests output's preconditions).
  unknown_settings = flatten([for name, c in local.components : [
    for k in keys(local.env[name]) : "${name}: ${k}" if !contains(keys(local.reads[name]), k)
  ]])
  unset_required = flatten([for name, c in local.components : [
    for k, s in local.reads[name] : "${name}: ${k}"
    if s.required_in_cluster && !contains(concat(keys(local.env[name]), keys(local.secret_env[name])), k)
  ]])
  unused_secrets     = [for k in keys(var.secret_env) : k if !anytrue([for name, c in local.components : contains(keys(local.reads[name]), k)])]
  unknown_components = setsubtract(keys(var.settings), keys(local.all_components))

  labels = { for name, c in local.components : name => {
    "app.kubernetes.io/name"      = name
    "app.kubernetes.io/part-of"   = "vigil"
    "app.kubernetes.io/component" = c.scaled != null ? "scaled-service" : "service"
  } }
  selector = { for name, c in local.components : name => {
    "app.kubernetes.io/name"    = name
    "app.kubernetes.io/part-of" = "vigil"
  } }
  pool = { for name, c in local.components : name => var.pools["services"] }

  most_replicas = { for name, c in local.components : name => c.scaled != null ? var.max_replicas[c.scaled] : c.replicas }

  volumes = { for name, c in local.components : name => concat(
    [{ name = "tmp", emptyDir = { sizeLimit = "1Gi" } }],
    [for _ in(contains(["sink-feeds", "drift"], name) ? [] : [1]) : { name = "data", emptyDir = { sizeLimit = "10Gi" } }],
    [for _ in(name == "ingest" ? [1] : []) : { name = "cameras", projected = { sources = [for i, _ in local.shards : {
      configMap = { name = "vigil-cameras-shard-${i}", items = [{ key = "cameras.yaml", path = "shard-${i}.yaml" }] }
    }] } }],
    [for _ in(name == "console" ? [1] : []) : { name = "cameras", configMap = { name = "vigil-cameras" } }],
    [for _ in(name == "console" ? [1] : []) : { name = "console-users", secret = { secretName = var.console.users_secret } }],
  ) }
  mounts = { for name, c in local.components : name => concat(
    [{ name = "tmp", mountPath = "/tmp" }, { name = "data", mountPath = local.data_dir }],
    [for _ in(contains(["ingest", "console"], name) ? [1] : []) : { name = "cameras", mountPath = "/etc/vigil/cameras", readOnly = true }],
    [for _ in(name == "console" ? [1] : []) : { name = "console-users", mountPath = "/etc/vigil/console", readOnly = true }],
  ) }

  containers = { for name, c in local.components : name => merge(merge({
    name            = name
    image           = var.image
    imagePullPolicy = "IfNotPresent"
    command         = c.command
    env = concat(
      [for k in sort(keys(local.env[name])) : { name = k, value = local.env[name][k] }],
      [for k in sort(keys(local.secret_env[name])) : {
        name      = k
        valueFrom = { secretKeyRef = { name = local.secret_env[name][k].secret, key = local.secret_env[name][k].key } }
      }],
      [for _ in(name == "ingest" ? [1] : []) : { name = "POD_INDEX", valueFrom = { fieldRef = { fieldPath = "metadata.labels['apps.kubernetes.io/pod-index']" } } }],
    )
    resources = {
      requests = lookup(var.resources, name, local.default_resources[name])
      limits   = lookup(var.resources, name, local.default_resources[name])
    }
    securityContext = {
      allowPrivilegeEscalation = false
      readOnlyRootFilesystem   = true
      runAsNonRoot             = true
      runAsUser                = 10001
      runAsGroup               = 10001
      capabilities             = { drop = ["ALL"] }
      seccompProfile           = { type = "RuntimeDefault" }
    }
    volumeMounts = local.mounts[name]
    }, [for _ in(c.service_port == null && !contains(local.scraped, name) ? [] : [1]) : {
      ports = concat(c.service_port == null ? [] : [{ name = "http", containerPort = c.service_port, protocol = "TCP" }],
      contains(local.scraped, name) ? [{ name = "metrics", containerPort = local.metrics_port, protocol = "TCP" }] : [])
    }]...), [for _ in(c.health == null ? [] : [1]) : {
    readinessProbe = { httpGet = { path = c.health, port = "http" }, periodSeconds = 10, failureThreshold = 3 }
    livenessProbe  = { httpGet = { path = c.health, port = "http" }, periodSeconds = 20, failureThreshold = 3, initialDelaySeconds = 20 }
  }]...) }

  pod_templates = { for name, c in local.components : name => {
    metadata = merge({ labels = local.labels[name] }, contains(local.scraped, name) ? { annotations = {
      "prometheus.io/scrape" = "true", "prometheus.io/port" = tostring(local.metrics_port), "prometheus.io/path" = "/metrics"
    } } : {})
    spec = {
      serviceAccountName            = var.service_account_name
      automountServiceAccountToken  = false
      terminationGracePeriodSeconds = 60
      securityContext = {
        runAsNonRoot   = true
        runAsUser      = 10001
        runAsGroup     = 10001
        fsGroup        = 10001
        seccompProfile = { type = "RuntimeDefault" }
      }
      nodeSelector = local.pool[name].node_selector
      tolerations  = local.pool[name].tolerations
      topologySpreadConstraints = [{
        maxSkew           = 1
        topologyKey       = var.zone_key
        whenUnsatisfiable = "ScheduleAnyway"
        labelSelector     = { matchLabels = local.selector[name] }
      }]
      containers = [local.containers[name]]
      volumes    = local.volumes[name]
    }
  } }

  annotations = { for name, c in local.components : name => {
    "vigil.io/consumer-group" = length(c.topics) > 0 ? "${var.topic_namespace}${local.group[name]}" : ""
    "vigil.io/consumes"       = join(",", c.topics)
    "vigil.io/max-replicas"   = tostring(local.most_replicas[name])
  } }

  statefulset_specs = { for name, c in local.components : name => merge({
    serviceName         = "vigil-${name}"
    replicas            = c.replicas
    podManagementPolicy = "Parallel"
    selector            = { matchLabels = local.selector[name] }
    template            = local.pod_templates[name]
    }, [for _ in(contains(["sink-feeds", "drift"], name) ? [1] : []) : {
      volumeClaimTemplates = [{
        metadata = { name = "data" }
        spec     = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = "10Gi" } } }
      }]
  }]...) if c.kind == "StatefulSet" }
  deployment_specs = { for name, c in local.components : name => merge({
    selector = { matchLabels = local.selector[name] }
    template = local.pod_templates[name]
    strategy = { type = c.strategy }
  }, [for _ in(c.replicas == null ? [] : [1]) : { replicas = c.replicas }]...) if c.kind == "Deployment" }

  workloads = concat(
    [for name, spec in local.statefulset_specs : {
      apiVersion = "apps/v1"
      kind       = "StatefulSet"
      metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name], annotations = local.annotations[name] }
      spec       = spec
    }],
    [for name, spec in local.deployment_specs : {
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name], annotations = local.annotations[name] }
      spec       = spec
    }],
  )

  scaled_objects = [for name, c in local.components : {
    apiVersion = "keda.sh/v1alpha1"
    kind       = "ScaledObject"
    metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name] }
    spec = {
      scaleTargetRef  = { apiVersion = "apps/v1", kind = "Deployment", name = "vigil-${name}" }
      minReplicaCount = var.replicas[c.scaled]
      maxReplicaCount = var.max_replicas[c.scaled]
      pollingInterval = 15
      cooldownPeriod  = 300
      advanced = { horizontalPodAutoscalerConfig = { behavior = {
        scaleDown = { stabilizationWindowSeconds = 300, policies = [{ type = "Percent", value = 20, periodSeconds = 60 }] }
      } } }
      triggers = [merge({
        type = "kafka"
        name = "consumer-lag"
        metadata = merge({
          bootstrapServers   = var.kafka_bootstrap
          consumerGroup      = "${var.topic_namespace}${local.group[name]}"
          lagThreshold       = tostring(ceil(var.capacities[c.scaled] * var.lag_target_s))
          offsetResetPolicy  = "earliest"
          allowIdleConsumers = "false"
        }, length(c.topics) == 1 ? { topic = "${var.topic_namespace}${c.topics[0]}" } : {})
      }, [for _ in(var.keda_kafka_authentication == null ? [] : [1]) : { authenticationRef = { name = var.keda_kafka_authentication } }]...)]
    }
  } if c.scaled != null]

  disruption_budgets = [for name, c in local.components : {
    apiVersion = "policy/v1"
    kind       = "PodDisruptionBudget"
    metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name] }
    spec       = { maxUnavailable = 1, selector = { matchLabels = local.selector[name] } }
  } if local.most_replicas[name] > 1]

  services = [for name, c in local.components : {
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name] }
    spec       = { type = "ClusterIP", selector = local.selector[name], ports = [{ name = "http", port = c.service_port, targetPort = "http", protocol = "TCP" }] }
  } if c.service_port != null && c.kind == "Deployment"]

  # Ingress only to the HTTP ports (console, re-ID API, DATEX II); the Kafka consumers accept no connections at all.
  network_policies = [for name, c in local.components : {
    apiVersion = "networking.k8s.io/v1"
    kind       = "NetworkPolicy"
    metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name] }
    spec = {
      podSelector = { matchLabels = local.selector[name] }
      policyTypes = ["Ingress"]
      ingress = concat([for _ in(c.service_port == null ? [] : [1]) : { ports = [{ port = c.service_port, protocol = "TCP" }] }],
      [for _ in(contains(local.scraped, name) ? [1] : []) : { ports = [{ port = local.metrics_port, protocol = "TCP" }] }])
    }
  }]

  # A StatefulSet needs its governing (headless) Service.
  headless = [for name, c in local.components : {
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = "vigil-${name}", namespace = var.namespace, labels = local.labels[name] }
    spec = { clusterIP = "None", selector = local.selector[name], ports = [
      c.service_port == null ? { name = "none", port = 80, targetPort = 80, protocol = "TCP" } : { name = "http", port = c.service_port, targetPort = c.service_port, protocol = "TCP" }
    ] }
  } if c.kind == "StatefulSet"]

  config_maps = concat([{
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "vigil-cameras", namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "vigil" } }
    data       = { "cameras.yaml" = var.cameras_yaml }
    }, {
    # The alert rules the embedded Prometheus loads too: mount into Prometheus (rule_files) or wrap in a PrometheusRule.
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "vigil-prometheus-rules", namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "vigil", "vigil.io/prometheus-rules" = "true" } }
    data       = { "vigil-alerts.yml" = file("${path.module}/files/vigil-alerts.yml") }
    }], [for i, shard in local.shards : {
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "vigil-cameras-shard-${i}", namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "vigil", "vigil.io/ingest-shard" = tostring(i) } }
    data       = { "cameras.yaml" = yamlencode({ cameras = shard }) }
  }])
}
