# Optional Amazon MSK instead of the in-cluster Strimzi Kafka: brokers from the sizing model (a multiple of the zones),
# TLS in transit, SASL/SCRAM clients, KMS at rest, broker logs to CloudWatch.

resource "aws_security_group" "msk" {
  count       = var.msk.enabled ? 1 : 0
  name        = "${var.name}-msk"
  description = "MSK brokers of ${var.name}: SASL/SCRAM over TLS from the EKS cluster"
  vpc_id      = var.vpc_id
  ingress {
    description     = "Kafka SASL_SSL from the cluster's nodes and pods"
    from_port       = 9096
    to_port         = 9096
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.vigil.vpc_config[0].cluster_security_group_id]
  }
  egress {
    description = "Replies inside the VPC"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["10.0.0.0/8"]
  }
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = var.msk.enabled ? 1 : 0
  name              = "/aws/msk/${var.name}"
  retention_in_days = 365
  kms_key_id        = aws_kms_key.vigil.arn
}

resource "aws_msk_cluster" "vigil" {
  count                  = var.msk.enabled ? 1 : 0
  cluster_name           = var.name
  kafka_version          = var.msk.kafka_version
  number_of_broker_nodes = module.sizing.kafka.brokers

  broker_node_group_info {
    instance_type   = var.msk.instance_type
    client_subnets  = values(var.private_subnets)
    security_groups = [aws_security_group.msk[0].id]
    storage_info {
      ebs_storage_info {
        volume_size = var.msk.volume_gb
      }
    }
  }

  client_authentication {
    sasl {
      scram = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.vigil.arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }
}
