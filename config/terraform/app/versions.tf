# App layer: what outlives a release (ALB, listener, security groups). Made by the first release of
# an app in an environment, then re-applied (unchanged) by every later one.
# State: s3://<artifacts bucket>/tfstate/<appId>/<environment>/app.tfstate, filled in by provision.sh
# with -backend-config (bucket, key, region, encrypt, kms_key_id, dynamodb_table).
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
