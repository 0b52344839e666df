# The node pools every other module schedules onto, in one place: labels, taints (in Kubernetes and in EKS spelling)
# and, per pool, the nodeSelector and tolerations a pod needs to land there. The AWS example builds its node groups
# from the same output, so a GPU pod's toleration and a GPU node's taint cannot drift apart.

locals {
  label_key = "vigil.io/pool"

  pools = {
    for name, pool in var.pools : name => {
      labels = merge({ (local.label_key) = name }, pool.extra_labels)
      taints = [for t in pool.taints : { key = t.key, value = t.value, effect = t.effect }]
      eks_taints = [for t in pool.taints : {
        key    = t.key
        value  = t.value
        effect = { NoSchedule = "NO_SCHEDULE", NoExecute = "NO_EXECUTE", PreferNoSchedule = "PREFER_NO_SCHEDULE" }[t.effect]
      }]
      node_selector = { (local.label_key) = name }
      tolerations   = [for t in pool.taints : { key = t.key, operator = "Equal", value = t.value, effect = t.effect }]
      gpu           = pool.gpu
    }
  }
}
