# IAM roles for service accounts: vigil (frame store read/write, model repository read), flink (checkpoints) and the
# EBS CSI driver (the PersistentVolumes of Kafka, ClickHouse, Keeper and the feeds sink).

resource "aws_iam_openid_connect_provider" "eks" {
  url            = aws_eks_cluster.vigil.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc = replace(aws_iam_openid_connect_provider.eks.url, "https://", "")
  service_accounts = {
    vigil   = { namespace = "vigil", name = "vigil" }
    flink   = { namespace = "vigil", name = "flink" }
    ebs_csi = { namespace = "kube-system", name = "ebs-csi-controller-sa" }
  }
}

data "aws_iam_policy_document" "irsa" {
  for_each = local.service_accounts
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.name}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each           = local.service_accounts
  name               = "${var.name}-${replace(each.key, "_", "-")}"
  assume_role_policy = data.aws_iam_policy_document.irsa[each.key].json
}

data "aws_iam_policy_document" "vigil" {
  statement {
    sid       = "FrameStore"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.bucket["frames"].arn}/*"]
  }
  statement {
    sid       = "FrameStoreList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.bucket["frames"].arn, aws_s3_bucket.bucket["models"].arn]
  }
  statement {
    sid       = "Models"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.bucket["models"].arn}/*"]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.vigil.arn]
  }
}

data "aws_iam_policy_document" "flink" {
  statement {
    sid       = "Checkpoints"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.bucket["checkpoints"].arn}/*"]
  }
  statement {
    sid       = "CheckpointsList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.bucket["checkpoints"].arn]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.vigil.arn]
  }
}

resource "aws_iam_role_policy" "vigil" {
  name   = "frame-store"
  role   = aws_iam_role.irsa["vigil"].id
  policy = data.aws_iam_policy_document.vigil.json
}

resource "aws_iam_role_policy" "flink" {
  name   = "checkpoints"
  role   = aws_iam_role.irsa["flink"].id
  policy = data.aws_iam_policy_document.flink.json
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.irsa["ebs_csi"].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

resource "aws_eks_addon" "addon" {
  for_each                 = toset(["vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"])
  cluster_name             = aws_eks_cluster.vigil.name
  addon_name               = each.value
  service_account_role_arn = each.value == "aws-ebs-csi-driver" ? aws_iam_role.irsa["ebs_csi"].arn : null
  depends_on               = [aws_eks_node_group.pool]
}
