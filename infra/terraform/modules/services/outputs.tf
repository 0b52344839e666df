output "manifests" {
  description = "Core objects (ConfigMaps, NetworkPolicies, Deployments, StatefulSets, Services, PodDisruptionBudgets) and KEDA ScaledObjects, in apply order."
  value       = concat(local.config_maps, local.network_policies, local.headless, local.services, local.workloads, local.disruption_budgets, local.scaled_objects)

  precondition {
    condition     = length(local.unknown_settings) == 0
    error_message = "Settings the component does not read (settings.auto.json): ${join(", ", local.unknown_settings)}."
  }
  precondition {
    condition     = length(local.unset_required) == 0
    error_message = "Settings whose default only works on one machine are not set: ${join(", ", local.unset_required)}."
  }
  precondition {
    condition     = length(local.unused_secrets) == 0
    error_message = "secret_env names settings no deployed component reads: ${join(", ", local.unused_secrets)}."
  }
  precondition {
    condition     = length(local.unknown_components) == 0
    error_message = "settings names unknown components: ${join(", ", local.unknown_components)}."
  }
  precondition {
    condition = alltrue(flatten([for name, c in local.components : [
      for t in c.topics : local.most_replicas[name] <= lookup(var.partitions, t, 0)
    ]]))
    error_message = "A consumer group can grow past a topic's partitions: raise the partitions or lower max_replicas."
  }
  precondition {
    condition     = length(var.cameras_yaml) < 900000
    error_message = "The camera file is over 900 kB: a ConfigMap holds at most 1 MiB."
  }
}

output "consumer_groups" {
  description = "Per component that consumes: its consumer group, the topics it reads and the most replicas it can have."
  value = { for name, c in local.components : local.group[name] => {
    component    = name
    topics       = c.topics
    max_replicas = local.most_replicas[name]
  } if length(c.topics) > 0 }
}

output "env" {
  description = "Per component: the plain VIGIL_* settings and the names of those taken from Secrets."
  value = { for name, c in local.components : name => {
    plain   = local.env[name]
    secrets = keys(local.secret_env[name])
  } }
}

output "ingest_shards" {
  description = "Ingest pods and the cameras per pod."
  value       = { pods = length(local.shards), cameras_per_pod = local.shard_size, cameras = local.camera_count }
}

output "endpoints" {
  description = "In-cluster URLs of the HTTP services."
  value       = { for name, c in local.components : name => "http://vigil-${name}.${var.namespace}.svc:${c.service_port}" if c.service_port != null }
}

output "metrics" {
  description = "Where Prometheus finds Vigil: the port every scraped component serves /metrics on, those components, and the ConfigMap holding the alert rules."
  value       = { port = local.metrics_port, components = [for name in local.scraped : name if contains(keys(local.components), name)], rules_config_map = "vigil-prometheus-rules" }
}
