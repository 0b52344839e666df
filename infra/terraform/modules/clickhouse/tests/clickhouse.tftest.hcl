variables {
  namespace = "vigil"
  shards    = 2
  zones     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  migration = { image = "registry.example/vigil:1.0.0" }
  pools = {
    services   = { node_selector = { "vigil.io/pool" = "services" }, tolerations = [], gpu = false }
    clickhouse = { node_selector = { "vigil.io/pool" = "clickhouse" }, tolerations = [{ key = "vigil.io/pool", operator = "Equal", value = "clickhouse", effect = "NoSchedule" }], gpu = false }
  }
}

run "replica_per_zone" {
  command = plan

  assert {
    condition     = output.custom_resources[1].spec.configuration.clusters[0].layout.shardsCount == 2 && length(output.custom_resources[1].spec.configuration.clusters[0].layout.replicas) == 3
    error_message = "2 shards, 3 replicas."
  }
  assert {
    condition     = [for t in output.custom_resources[1].spec.templates.podTemplates : t.zone.values[0]] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    error_message = "Each replica pinned to its own zone."
  }
  assert {
    condition     = output.custom_resources[1].spec.configuration.zookeeper.nodes[0].host == "keeper-vigil"
    error_message = "ClickHouse uses the Keeper installation."
  }
  assert {
    condition     = startswith(output.migration_job, "vigil-clickhouse-migrate-") && output.manifests[2].spec.template.spec.containers[0].command[1] == "/etc/vigil/migrate/migrate.py"
    error_message = "The migration Job runs the mounted script."
  }
}

run "one_zone_is_refused" {
  command = plan
  variables {
    zones = ["eu-west-1a"]
  }
  expect_failures = [var.zones]
}
