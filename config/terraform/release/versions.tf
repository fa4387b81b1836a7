# Release layer: one per run (green). Launch template with the new AMI, ASG, target group, the
# instance role, and a listener rule that makes the green target group reachable (health checks,
# smoke test by header) before PostProvision shifts traffic to it.
# State: s3://<artifacts bucket>/tfstate/<appId>/<environment>/release-<runId>.tfstate, filled in by
# provision.sh with -backend-config; `terraform destroy` of it is the Provision compensation.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }

  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}
