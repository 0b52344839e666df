terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { "app.kubernetes.io/part-of" = "vigil", "vigil.io/deployment" = var.name }
  }
}
