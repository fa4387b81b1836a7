# The app AMI: the SOE base image + the release artifact + the app's Chef run list, encrypted with
# the stage key. bake.sh writes every variable without a default from the run config; a builder
# site may override the defaults in /etc/ami-pipeline/packer.pkrvars.hcl.
# Packer 1.6-compatible HCL2 (no required_plugins block: that came in 1.7).

variable "app_id" {
  type = string
}

variable "version" {
  type = string
}

variable "build_id" {
  type = string
}

variable "run_id" {
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
  description = "Stage customer-managed key: the build volume, the AMI's snapshots."
}

variable "source_ami" {
  type = string
}

variable "instance_type" {
  type = string
}

variable "volume_size" {
  type        = number
  description = "Root volume size in GiB."
}

variable "chef_run_list" {
  type = list(string)
}

variable "chef_attributes_file" {
  type        = string
  description = "JSON node attributes on the builder (0600); uploaded, used and deleted on the build instance."
}

variable "artifact_s3_uri" {
  type = string
}

variable "artifact_sha256" {
  type = string
}

variable "tags" {
  type = map(string)
}

variable "manifest_path" {
  type = string
}

# Site settings (defaults suit an Amazon Linux SOE image in a VPC whose build subnets are tagged).

variable "ssh_username" {
  type    = string
  default = "ec2-user"
}

variable "root_device_name" {
  type    = string
  default = "/dev/xvda"
}

variable "build_instance_profile" {
  type        = string
  default     = "ami-pipeline-build-instance"
  description = "Instance profile of the build instance: SSM core (Session Manager) and s3:GetObject on the artifact."
}

variable "build_subnet_tag" {
  type        = string
  default     = "ami-pipeline:build-subnet"
  description = "Subnets tagged <this> = true are used for build instances (the one with most free addresses)."
}

variable "cinc_version" {
  type        = string
  default     = "18"
  description = "Cinc Client installed when the base image has neither cinc-solo nor chef-solo."
}

locals {
  artifact_dir = "/opt/ami-pipeline/artifact"
}

source "amazon-ebs" "app" {
  region          = var.region
  source_ami      = var.source_ami
  instance_type   = var.instance_type
  ami_name        = "${var.app_id}-${var.version}-${var.run_id}"
  ami_description = "ami-pipeline ${var.stage} ${var.app_id} ${var.version} (build ${var.build_id}, run ${var.run_id})"

  encrypt_boot = true
  kms_key_id   = var.kms_key_arn

  launch_block_device_mappings {
    device_name           = var.root_device_name
    volume_size           = var.volume_size
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true
  }

  # No inbound SSH: Packer reaches the instance through Session Manager with a temporary key.
  ssh_interface               = "session_manager"
  ssh_username                = var.ssh_username
  iam_instance_profile        = var.build_instance_profile
  associate_public_ip_address = false
  # Packer still creates a temporary security group; let it admit nothing from the network.
  temporary_security_group_source_cidrs = ["127.0.0.1/32"]
  subnet_filter {
    filters = {
      (format("tag:%s", var.build_subnet_tag)) = "true"
    }
    most_free = true
  }

  tags            = var.tags
  run_tags        = var.tags
  run_volume_tags = var.tags
  snapshot_tags   = var.tags
}

build {
  sources = ["source.amazon-ebs.app"]

  # IMDSv2 only on the build instance before anything of ours runs on it. Packer 1.6 has no
  # metadata_options (1.7+ does: prefer it there), so the builder host sets it on the instance.
  provisioner "shell-local" {
    inline = [
      "aws ec2 modify-instance-metadata-options --region '${var.region}' --instance-id '${build.ID}' --http-tokens required --http-endpoint enabled --http-put-response-hop-limit 1 --output text --query InstanceId",
    ]
  }

  # The attributes may hold secrets: they go into a folder only the SSH user can read.
  provisioner "shell" {
    inline = ["umask 077 && mkdir -p /tmp/ami-pipeline-private"]
  }

  provisioner "file" {
    source      = var.chef_attributes_file
    destination = "/tmp/ami-pipeline-private/chef-attributes.json"
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/install-artifact.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} bash {{ .Path }}"
    environment_vars = [
      "ARTIFACT_S3_URI=${var.artifact_s3_uri}",
      "ARTIFACT_SHA256=${var.artifact_sha256}",
      "ARTIFACT_DIR=${local.artifact_dir}",
      "AWS_DEFAULT_REGION=${var.region}",
    ]
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/run-chef.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} bash {{ .Path }}"
    environment_vars = [
      "CHEF_RUN_LIST=${join(",", var.chef_run_list)}",
      "CHEF_ATTRIBUTES=/tmp/ami-pipeline-private/chef-attributes.json",
      "COOKBOOK_PATH=${local.artifact_dir}/cookbooks",
      "CINC_VERSION=${var.cinc_version}",
    ]
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/cleanup.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} bash {{ .Path }}"
  }

  post-processor "manifest" {
    output     = var.manifest_path
    strip_path = true
    custom_data = {
      app_id  = var.app_id
      version = var.version
      run_id  = var.run_id
    }
  }
}
