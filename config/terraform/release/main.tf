locals {
  name = "${var.app_id}-${var.environment}-${var.run_id}"
  # Target group names: at most 32 characters, no hyphen at either end.
  target_group_name = "${trim(substr(var.app_id, 0, 21), "-")}-${substr(var.run_id, 0, 10)}"
  release_tags = {
    "ami-pipeline:version"  = var.app_version
    "ami-pipeline:build-id" = var.build_id
  }
}

resource "aws_launch_template" "release" {
  name                   = local.name
  description            = "${var.app_id} ${var.app_version} (run ${var.run_id})"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [var.instance_security_group_id]
  update_default_version = true
  # No key_name: nobody logs in; operators use Session Manager.

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = var.root_device_name
    ebs {
      volume_size           = var.volume_size
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, local.release_tags, { Name = local.name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, local.release_tags, { Name = local.name })
  }
}

resource "aws_lb_target_group" "green" {
  name                 = local.target_group_name
  vpc_id               = var.vpc_id
  port                 = var.port
  protocol             = "HTTP"
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = var.health_check_path
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = tostring(var.health_check_status)
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = local.release_tags
}

# A target group only gets health checks once a listener uses it: this rule (matched by header,
# so no regular traffic) makes green healthy-checkable and smoke-testable before the shift.
resource "aws_lb_listener_rule" "green" {
  listener_arn = var.listener_arn

  condition {
    http_header {
      http_header_name = "X-Ami-Pipeline-Run"
      values           = [var.run_id]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.green.arn
  }
}

resource "aws_autoscaling_group" "release" {
  name                      = local.name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.min_size
  vpc_zone_identifier       = var.subnet_ids
  target_group_arns         = [aws_lb_target_group.green.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 300
  # Apply returns once min_size instances are healthy in the green target group.
  min_elb_capacity          = var.min_size
  wait_for_capacity_timeout = var.capacity_timeout

  launch_template {
    id      = aws_launch_template.release.id
    version = aws_launch_template.release.latest_version
  }

  dynamic "tag" {
    for_each = merge(var.tags, local.release_tags, { Name = local.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false # the launch template tags instances and volumes
    }
  }

  depends_on = [aws_lb_listener_rule.green, aws_iam_role_policy_attachment.ssm_core]
}
