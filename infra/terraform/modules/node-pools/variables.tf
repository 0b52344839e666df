variable "pools" {
  description = "Node pools by name: extra node labels, taints (key, value, effect) and whether its nodes carry GPUs. Every pool gets the label vigil.io/pool=<name>."
  nullable    = false
  type = map(object({
    extra_labels = optional(map(string), {})
    taints = optional(list(object({
      key    = string
      value  = string
      effect = string
    })), [])
    gpu = optional(bool, false)
  }))
  default = {
    system     = {}
    services   = {}
    kafka      = { taints = [{ key = "vigil.io/pool", value = "kafka", effect = "NoSchedule" }] }
    flink      = { taints = [{ key = "vigil.io/pool", value = "flink", effect = "NoSchedule" }] }
    clickhouse = { taints = [{ key = "vigil.io/pool", value = "clickhouse", effect = "NoSchedule" }] }
    gpu = {
      gpu          = true
      extra_labels = { "nvidia.com/gpu.present" = "true" }
      taints       = [{ key = "nvidia.com/gpu", value = "present", effect = "NoSchedule" }]
    }
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : alltrue([for t in p.taints : contains(["NoSchedule", "NoExecute", "PreferNoSchedule"], t.effect)])])
    error_message = "A taint's effect is NoSchedule, NoExecute or PreferNoSchedule."
  }
  validation {
    condition     = alltrue([for name in ["system", "services", "kafka", "flink", "clickhouse", "gpu"] : contains(keys(var.pools), name)])
    error_message = "The pools system, services, kafka, flink, clickhouse and gpu must all be defined (they may share nodes by having no taints)."
  }
  validation {
    condition     = alltrue([for name, p in var.pools : p.gpu == (name == "gpu")])
    error_message = "Only the pool named gpu has gpu = true."
  }
  validation {
    condition     = length(var.pools["gpu"].taints) > 0
    error_message = "The gpu pool needs a taint, so that only pods that ask for a GPU land on GPU nodes."
  }
}
