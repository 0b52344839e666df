output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.vigil.name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = aws_eks_cluster.vigil.endpoint
}

output "kubeconfig_command" {
  description = "Writes the kubeconfig the operators and workloads roots use."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${aws_eks_cluster.vigil.name}"
}

output "zones" {
  description = "The zones (the workloads root's zones)."
  value       = local.zones
}

output "frame_store_uri" {
  description = "VIGIL_FRAME_STORE (the workloads root's frame_store_uri)."
  value       = "s3://${aws_s3_bucket.bucket["frames"].bucket}/frames"
}

output "checkpoint_uri" {
  description = "The workloads root's checkpoint_uri."
  value       = "s3://${aws_s3_bucket.bucket["checkpoints"].bucket}/flink"
}

output "model_repository" {
  description = "The workloads root's model_repository (sync `vigil triton-gpu-repo`'s output there)."
  value       = "s3://${aws_s3_bucket.bucket["models"].bucket}/triton"
}

output "service_account_annotations" {
  description = "The workloads root's service_account_annotations (the vigil ServiceAccount's IRSA role)."
  value       = { "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["vigil"].arn }
}

output "flink_service_account_annotations" {
  description = "The operators root's flink_service_account_annotations."
  value       = { "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["flink"].arn }
}

output "msk_bootstrap" {
  description = "MSK's SASL/SCRAM bootstrap brokers (the workloads root's kafka.bootstrap), null without MSK."
  value       = var.msk.enabled ? aws_msk_cluster.vigil[0].bootstrap_brokers_sasl_scram : null
}

output "node_groups" {
  description = "Node groups: pool, desired, min and max nodes."
  value       = { for k, g in local.node_group_specs : k => { pool = g.pool, desired = g.desired, min = g.min, max = g.max } }
}

output "sizing" {
  description = "The sizing model's result the node groups were sized from."
  value = {
    replicas   = module.sizing.replicas
    triton     = module.sizing.triton
    flink      = module.sizing.flink
    clickhouse = module.sizing.clickhouse
    kafka      = module.sizing.kafka
  }
}
