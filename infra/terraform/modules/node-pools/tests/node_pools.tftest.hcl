run "defaults" {
  command = plan

  assert {
    condition     = output.pools["gpu"].tolerations[0] == { key = "nvidia.com/gpu", operator = "Equal", value = "present", effect = "NoSchedule" }
    error_message = "A GPU pod tolerates exactly the GPU nodes' taint."
  }
  assert {
    condition     = output.pools["gpu"].eks_taints[0].effect == "NO_SCHEDULE"
    error_message = "EKS spells NoSchedule as NO_SCHEDULE."
  }
  assert {
    condition     = output.pools["services"].node_selector == { "vigil.io/pool" = "services" } && length(output.pools["services"].tolerations) == 0
    error_message = "An untainted pool needs only its selector."
  }
}

run "gpu_pool_without_taint_is_refused" {
  command = plan
  variables {
    pools = {
      system = {}, services = {}, kafka = {}, flink = {}, clickhouse = {}
      gpu    = { gpu = true }
    }
  }
  expect_failures = [var.pools]
}

run "bad_effect_is_refused" {
  command = plan
  variables {
    pools = {
      system = {}, services = {}, kafka = {}, flink = {}, clickhouse = {}
      gpu    = { gpu = true, taints = [{ key = "nvidia.com/gpu", value = "present", effect = "Never" }] }
    }
  }
  expect_failures = [var.pools]
}
