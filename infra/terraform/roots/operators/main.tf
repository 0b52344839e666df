# Stage 1: the operators whose CRDs the workloads' custom resources need (Strimzi, the Flink operator with
# cert-manager for its webhook, KEDA, the Altinity ClickHouse operator), Prometheus for KEDA's Triton trigger and
# optionally the NVIDIA GPU operator. Apply this before ../workloads: a kubernetes_manifest of a custom resource
# cannot be planned before its CRD exists.

locals {
  system = { nodeSelector = var.system_node_selector }
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.versions.cert_manager
  wait             = true
  values = [yamlencode(merge(local.system, {
    crds = { enabled = true }
  }))]
}

resource "helm_release" "strimzi" {
  count            = var.install.strimzi ? 1 : 0
  name             = "strimzi"
  namespace        = "strimzi"
  create_namespace = true
  repository       = "oci://quay.io/strimzi-helm"
  chart            = "strimzi-kafka-operator"
  version          = var.versions.strimzi
  wait             = true
  values = [yamlencode(merge(local.system, {
    watchNamespaces = [var.kafka_namespace]
  }))]
}

resource "helm_release" "flink_operator" {
  name             = "flink-kubernetes-operator"
  namespace        = "flink-operator"
  create_namespace = true
  repository       = "https://downloads.apache.org/flink/flink-kubernetes-operator-${var.versions.flink_operator}/"
  chart            = "flink-kubernetes-operator"
  version          = var.versions.flink_operator
  wait             = true
  values = [yamlencode(merge(local.system, {
    watchNamespaces   = [var.namespace]
    jobServiceAccount = { create = true, name = "flink", annotations = var.flink_service_account_annotations }
  }))]
  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "keda" {
  name             = "keda"
  namespace        = "keda"
  create_namespace = true
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.versions.keda
  wait             = true
  values           = [yamlencode(local.system)]
}

resource "helm_release" "clickhouse_operator" {
  name             = "clickhouse-operator"
  namespace        = "clickhouse-operator"
  create_namespace = true
  repository       = "https://helm.altinity.com"
  chart            = "altinity-clickhouse-operator"
  version          = var.versions.clickhouse
  wait             = true
  values           = [yamlencode({ operator = { nodeSelector = var.system_node_selector } })]
}

resource "helm_release" "prometheus" {
  count            = var.install.prometheus ? 1 : 0
  name             = "prometheus"
  namespace        = "monitoring"
  create_namespace = true
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "prometheus"
  version          = var.versions.prometheus
  wait             = true
  # Vigil's alert rules, the same file the embedded Prometheus loads (modules/services ships it as ConfigMap
  # vigil-prometheus-rules too); the chart's default scrape jobs find the pods by their prometheus.io annotations
  values = [yamlencode({
    server       = { nodeSelector = var.system_node_selector }
    serverFiles  = { "alerting_rules.yml" = yamldecode(file("${path.module}/../../modules/services/files/vigil-alerts.yml")) }
    alertmanager = { enabled = true, nodeSelector = var.system_node_selector }
  })]
}

resource "helm_release" "gpu_operator" {
  count            = var.install.gpu_operator ? 1 : 0
  name             = "gpu-operator"
  namespace        = "gpu-operator"
  create_namespace = true
  repository       = "https://helm.ngc.nvidia.com/nvidia"
  chart            = "gpu-operator"
  version          = var.versions.gpu_operator
  wait             = true
  values = [yamlencode({
    driver = { enabled = false }
    # The GPU nodes carry the node-pools module's taint; the operator's daemonsets tolerate it.
    daemonsets = { tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }] }
  })]
}
