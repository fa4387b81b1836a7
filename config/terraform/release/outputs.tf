# Read by provision.sh into result.json (launchTemplateId, asgName, targetGroupArn).

output "launch_template_id" {
  value = aws_launch_template.release.id
}

output "asg_name" {
  value = aws_autoscaling_group.release.name
}

output "target_group_arn" {
  value = aws_lb_target_group.green.arn
}

output "listener_rule_arn" {
  value = aws_lb_listener_rule.green.arn
}

output "instance_role_arn" {
  value = aws_iam_role.instance.arn
}
