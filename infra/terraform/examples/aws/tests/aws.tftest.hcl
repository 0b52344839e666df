# Needs the AWS provider's schema (a provider mirror); tests/infra skips it, with the reason, where there is none.
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
}

variables {
  region          = "eu-west-1"
  vpc_id          = "vpc-0123456789abcdef0"
  private_subnets = { "eu-west-1a" = "subnet-a", "eu-west-1b" = "subnet-b", "eu-west-1c" = "subnet-c" }
  cameras         = 1000
}

run "thousand_cameras" {
  command = plan

  assert {
    condition     = aws_eks_node_group.pool["gpu"].taint != null && one(aws_eks_node_group.pool["gpu"].taint).key == "nvidia.com/gpu" && one(aws_eks_node_group.pool["gpu"].taint).effect == "NO_SCHEDULE"
    error_message = "GPU nodes carry the taint the Triton pods tolerate."
  }
  assert {
    condition     = aws_eks_node_group.pool["gpu"].ami_type == "AL2023_x86_64_NVIDIA" && aws_eks_node_group.pool["gpu"].labels["vigil.io/pool"] == "gpu"
    error_message = "GPU nodes run the NVIDIA AMI and carry the pool label."
  }
  assert {
    condition     = aws_eks_node_group.pool["gpu"].scaling_config[0].min_size == module.sizing.triton.gpus && aws_eks_node_group.pool["gpu"].scaling_config[0].max_size == module.sizing.triton.max_gpus
    error_message = "The GPU node group holds the sized GPUs and grows to the most Triton pods."
  }
  assert {
    condition     = length([for k, g in aws_eks_node_group.pool : k if startswith(k, "clickhouse-")]) == 3
    error_message = "One ClickHouse node group per zone."
  }
  assert {
    condition     = length(aws_eks_node_group.pool["services"].taint) == 0
    error_message = "The services pool is untainted."
  }
  assert {
    condition     = length(aws_msk_cluster.vigil) == 0
    error_message = "No MSK unless asked for."
  }
}

run "with_msk" {
  command = plan
  variables {
    msk = { enabled = true }
  }
  assert {
    condition     = aws_msk_cluster.vigil[0].number_of_broker_nodes % 3 == 0 && length([for k, g in aws_eks_node_group.pool : k if startswith(k, "kafka-")]) == 0
    error_message = "MSK brokers in whole zones, and no Kafka node groups."
  }
}
