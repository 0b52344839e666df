output "custom_resources" {
  description = "The ClickHouseKeeperInstallation and the ClickHouseInstallation."
  value       = [local.keeper, local.installation]
}

output "manifests" {
  description = "Core objects: the migration script's ConfigMap, the migration Job and its NetworkPolicy."
  value       = [local.migration_script, local.migration_network_policy, local.migration_job]
}

output "http_endpoint" {
  description = "The cluster's HTTP endpoint (the operator's Service over every replica), for VIGIL_CLICKHOUSE_DSN."
  value       = "http://clickhouse-${var.name}.${var.namespace}.svc:8123"
}

output "dsn_template" {
  description = "VIGIL_CLICKHOUSE_DSN, with the password to fill in (keep it in the Secret)."
  value       = "http://${var.user.name}:<password>@clickhouse-${var.name}.${var.namespace}.svc:8123/${var.database}"
}

output "keeper_endpoint" {
  description = "Keeper's client endpoint."
  value       = "${local.keeper_host}.${var.namespace}.svc:2181"
}

output "layout" {
  description = "Shards, replicas per shard and the zone of each replica."
  value       = { shards = var.shards, replicas = length(var.zones), zones = var.zones }
}

output "migration_job" {
  description = "Name of the migration Job (changes with the script, the image or the database, so a new one runs)."
  value       = local.job_name
}
