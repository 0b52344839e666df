output "releases" {
  description = "Installed operators and their chart versions."
  value = merge(
    { cert_manager = helm_release.cert_manager.version, flink_operator = helm_release.flink_operator.version, keda = helm_release.keda.version, clickhouse_operator = helm_release.clickhouse_operator.version },
    { for r in helm_release.strimzi : "strimzi" => r.version },
    { for r in helm_release.prometheus : "prometheus" => r.version },
    { for r in helm_release.gpu_operator : "gpu_operator" => r.version },
  )
}

output "prometheus_url" {
  description = "The in-cluster Prometheus for ../workloads' prometheus_url (null when not installed here)."
  value       = var.install.prometheus ? "http://prometheus-server.monitoring.svc" : null
}
