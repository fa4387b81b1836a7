data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  # The app's own resources are named <appId>-<environment>-… (parameters and secrets under
  # <appId>/<environment>/): the role reaches those and nothing else.
  prefix     = "${var.app_id}-${var.environment}"
  log_groups = length(var.log_group_names) > 0 ? var.log_group_names : ["/app/${var.app_id}/*"]

  # What each allowed service grants. A service the platform allows but this map lacks fails the
  # plan (precondition below) rather than being granted broadly.
  service_access = {
    s3 = {
      actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation"]
      resources = ["arn:${local.partition}:s3:::${local.prefix}-*", "arn:${local.partition}:s3:::${local.prefix}-*/*"]
      condition = null
    }
    sqs = {
      actions = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      resources = ["arn:${local.partition}:sqs:${var.region}:${local.account}:${local.prefix}-*"]
      condition = null
    }
    sns = {
      actions   = ["sns:Publish"]
      resources = ["arn:${local.partition}:sns:${var.region}:${local.account}:${local.prefix}-*"]
      condition = null
    }
    dynamodb = {
      actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
      "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"]
      resources = ["arn:${local.partition}:dynamodb:${var.region}:${local.account}:table/${local.prefix}-*"]
      condition = null
    }
    kms = {
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = ["arn:${local.partition}:kms:${var.region}:${local.account}:key/*"]
      condition = { "ForAnyValue:StringLike" = { "kms:ResourceAliases" = ["alias/${local.prefix}-*"] } }
    }
    ssm = {
      actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
      resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter/${var.app_id}/${var.environment}/*"]
      condition = null
    }
    secretsmanager = {
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = ["arn:${local.partition}:secretsmanager:${var.region}:${local.account}:secret:${var.app_id}/${var.environment}/*"]
      condition = null
    }
    logs = {
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      resources = [for g in local.log_groups : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${g}:*"]
      condition = null
    }
    # PutMetricData has no resource-level permissions: limited to the app's namespace instead.
    cloudwatch = {
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]
      condition = { StringEquals = { "cloudwatch:namespace" = var.app_id } }
    }
    # X-Ray has no resource-level permissions at all.
    xray = {
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
      resources = ["*"]
      condition = null
    }
  }

  statements = [
    for service in sort(distinct(var.services)) : merge(
      {
        Sid      = "App${replace(title(replace(service, "-", " ")), " ", "")}"
        Effect   = "Allow"
        Action   = local.service_access[service].actions
        Resource = local.service_access[service].resources
      },
      local.service_access[service].condition == null ? {} : { Condition = local.service_access[service].condition },
    ) if contains(keys(local.service_access), service)
  ]
}

resource "aws_iam_role" "instance" {
  # At most 64 characters: appId (<= 40) + run id (20) + 1.
  name                 = "${var.app_id}-${var.run_id}"
  description          = "Instances of ${var.app_id} ${var.app_version} (${var.environment}, run ${var.run_id})"
  permissions_boundary = var.permissions_boundary_arn == "" ? null : var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  lifecycle {
    precondition {
      condition     = length(setsubtract(var.services, keys(local.service_access))) == 0
      error_message = "No instance-role access is defined for: ${join(", ", setsubtract(var.services, keys(local.service_access)))} (config/terraform/release/iam.tf)."
    }
  }
}

# Session Manager: how the validate step's InSpec reaches the instances (no SSH, no key pair).
resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "services" {
  count = length(local.statements) > 0 ? 1 : 0
  name  = "allowed-services"
  role  = aws_iam_role.instance.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.statements
  })
}

resource "aws_iam_instance_profile" "instance" {
  name = aws_iam_role.instance.name
  role = aws_iam_role.instance.name
}
