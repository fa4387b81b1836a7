# From the run config and the app layer's outputs (provision.sh writes release.tfvars.json).

variable "app_id" {
  type = string
}

variable "environment" {
  type = string
}

variable "stage" {
  type = string
}

variable "region" {
  type = string
}

variable "run_id" {
  type = string
}

variable "app_version" {
  type = string
}

variable "build_id" {
  type = string
}

variable "kms_key_arn" {
  type        = string
  description = "Stage customer-managed key: every EBS volume of the release is encrypted with it."
}

variable "ami_id" {
  type = string
}

variable "instance_type" {
  type = string
}

variable "min_size" {
  type = number
}

variable "max_size" {
  type = number
}

variable "volume_size" {
  type        = number
  description = "Root volume size in GiB (the size the AMI was baked with)."
}

variable "port" {
  type = number
}

variable "health_check_path" {
  type = string
}

variable "health_check_status" {
  type = number
}

variable "services" {
  type        = list(string)
  description = "AWS services the app may call (app config `services`, checked against the platform rules)."
}

variable "log_group_names" {
  type = list(string)
}

variable "tags" {
  type = map(string)
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "instance_security_group_id" {
  type = string
}

variable "listener_arn" {
  type = string
}

# Site settings: override in /etc/ami-pipeline/terraform.tfvars.json on the builder.

variable "root_device_name" {
  type    = string
  default = "/dev/xvda"
}

variable "permissions_boundary_arn" {
  type        = string
  default     = ""
  description = "Permissions boundary for the instance role, where the estate requires one."
}

variable "capacity_timeout" {
  type        = string
  default     = "15m"
  description = "How long apply waits for min_size instances to be healthy in the green target group."
}
