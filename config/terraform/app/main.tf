locals {
  # ALB names: at most 32 characters, no hyphen at either end.
  alb_name = trim(substr("${var.app_id}-${var.environment}", 0, 32), "-")
  https    = var.certificate_arn != ""
}

data "aws_vpc" "app" {
  tags = {
    (var.vpc_tag_key) = var.environment
  }
}

data "aws_subnets" "app" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.app.id]
  }
  tags = {
    (var.subnet_tag_key) = var.subnet_tag_value
  }
}

resource "aws_security_group" "alb" {
  name_prefix = "${local.alb_name}-alb-"
  description = "ALB of ${var.app_id} (${var.environment})"
  vpc_id      = data.aws_vpc.app.id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "instance" {
  name_prefix = "${local.alb_name}-instance-"
  description = "Instances of ${var.app_id} (${var.environment}): the app port from the ALB only"
  vpc_id      = data.aws_vpc.app.id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_clients" {
  for_each          = toset(var.client_cidrs)
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.https ? 443 : 80
  to_port           = local.https ? 443 : 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_instances" {
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.instance.id
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

resource "aws_vpc_security_group_ingress_rule" "instances_from_alb" {
  security_group_id            = aws_security_group.instance.id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

# AWS APIs (through VPC endpoints or the egress proxy): HTTPS only.
resource "aws_vpc_security_group_egress_rule" "instances_https" {
  security_group_id = aws_security_group.instance.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_lb" "app" {
  name                       = local.alb_name
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = data.aws_subnets.app.ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
}

resource "aws_lb_listener" "app" {
  load_balancer_arn = aws_lb.app.arn
  port              = local.https ? 443 : 80
  protocol          = local.https ? "HTTPS" : "HTTP"
  certificate_arn   = local.https ? var.certificate_arn : null
  ssl_policy        = local.https ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null

  # Until a release is live. PostProvision then owns the default action (weighted blue -> green),
  # so later applies of this layer must not put it back.
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no release of ${var.app_id} is live"
      status_code  = "503"
    }
  }

  lifecycle {
    ignore_changes = [default_action]
  }
}
