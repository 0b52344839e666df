output "pools" {
  description = "Per pool: labels, taints (Kubernetes spelling), eks_taints (EKS node group spelling), node_selector and tolerations for pods, gpu."
  value       = local.pools
}

output "label_key" {
  description = "The node label that names a node's pool."
  value       = local.label_key
}
