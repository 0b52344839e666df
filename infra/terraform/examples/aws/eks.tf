data "aws_iam_policy_document" "eks_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = 365
  kms_key_id        = aws_kms_key.vigil.arn
}

resource "aws_eks_cluster" "vigil" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = values(var.private_subnets)
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_endpoint_cidrs) > 0
    public_access_cidrs     = length(var.public_endpoint_cidrs) > 0 ? var.public_endpoint_cidrs : null
  }

  access_config {
    authentication_mode = "API"
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.vigil.arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  depends_on                = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.cluster]
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/${each.value}"
}

resource "aws_launch_template" "node" {
  for_each = var.node_groups
  name     = "${var.name}-${each.key}"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = each.value.disk_gb
      volume_type = "gp3"
      encrypted   = true
      kms_key_id  = aws_kms_key.vigil.arn
    }
  }
}

locals {
  node_group_specs = merge(
    { for pool, n in local.nodes : pool => { pool = pool, subnets = values(var.private_subnets), desired = n.desired, min = n.min, max = n.max } if n.max > 0 },
    merge([for pool, per_zone in local.zoned : { for zone in local.zones : "${pool}-${zone}" => {
      pool = pool, subnets = [var.private_subnets[zone]], desired = per_zone, min = per_zone, max = per_zone + 1
    } } if per_zone > 0]...),
  )
}

resource "aws_eks_node_group" "pool" {
  for_each        = local.node_group_specs
  cluster_name    = aws_eks_cluster.vigil.name
  node_group_name = "${var.name}-${each.key}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = each.value.subnets
  instance_types  = var.node_groups[each.value.pool].instance_types
  ami_type        = module.pools.pools[each.value.pool].gpu ? "AL2023_x86_64_NVIDIA" : "AL2023_x86_64_STANDARD"
  labels          = module.pools.pools[each.value.pool].labels

  dynamic "taint" {
    for_each = module.pools.pools[each.value.pool].eks_taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  scaling_config {
    desired_size = max(each.value.desired, each.value.min)
    min_size     = each.value.min
    max_size     = max(each.value.max, each.value.desired, 1)
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node[each.value.pool].id
    version = aws_launch_template.node[each.value.pool].latest_version
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }
  depends_on = [aws_iam_role_policy_attachment.node]
}
