output "manifests" {
  description = "Triton's Deployment, Service, PodDisruptionBudget, NetworkPolicy and KEDA ScaledObject."
  value       = [local.service, local.deployment, local.disruption_budget, local.scaled_object, local.network_policy]
  precondition {
    condition     = var.replicas >= 1 && var.replicas <= var.max_replicas
    error_message = "1 <= replicas <= max_replicas."
  }
}

output "grpc_endpoint" {
  description = "VIGIL_TRITON_URL: Triton's gRPC endpoint in the cluster (host:port)."
  value       = "${local.name}.${var.namespace}.svc:8001"
}

output "metrics_endpoint" {
  description = "Triton's Prometheus metrics in the cluster."
  value       = "http://${local.name}.${var.namespace}.svc:8002/metrics"
}

output "gpus" {
  description = "GPUs requested at steady state and at most."
  value       = { steady = var.on_gpu ? var.replicas : 0, most = var.on_gpu ? var.max_replicas : 0 }
}
