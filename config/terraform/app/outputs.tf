# Read by provision.sh: the network ones feed the release layer, alb_dns_name goes to result.json.

output "vpc_id" {
  value = data.aws_vpc.app.id
}

output "subnet_ids" {
  value = data.aws_subnets.app.ids
}

output "alb_arn" {
  value = aws_lb.app.arn
}

output "alb_dns_name" {
  value = aws_lb.app.dns_name
}

output "listener_arn" {
  value = aws_lb_listener.app.arn
}

output "alb_security_group_id" {
  value = aws_security_group.alb.id
}

output "instance_security_group_id" {
  value = aws_security_group.instance.id
}
