# From the run config (provision.sh writes them to app.tfvars.json).

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

variable "kms_key_arn" {
  type        = string
  description = "Stage customer-managed key (declared for symmetry with the release layer; the ALB has no volumes)."
}

variable "port" {
  type        = number
  description = "Port the application listens on."
}

variable "tags" {
  type        = map(string)
  description = "Platform and app tags, applied to every resource (provider default_tags)."
}

# Site settings: override in /etc/ami-pipeline/terraform.tfvars.json on the builder.

variable "vpc_tag_key" {
  type        = string
  default     = "ami-pipeline:environment"
  description = "The app VPC is the one tagged <vpc_tag_key> = <environment>."
}

variable "subnet_tag_key" {
  type    = string
  default = "ami-pipeline:tier"
}

variable "subnet_tag_value" {
  type        = string
  default     = "app"
  description = "ALB and instances use the VPC's subnets tagged <subnet_tag_key> = <subnet_tag_value>."
}

variable "client_cidrs" {
  type        = list(string)
  default     = ["10.0.0.0/8"]
  description = "Who may reach the (internal) ALB."
}

variable "certificate_arn" {
  type        = string
  default     = ""
  description = "ACM certificate for an HTTPS listener on 443; empty means HTTP on 80."
}

variable "alb_deletion_protection" {
  type    = bool
  default = true
}
