output "instance_id" {
  description = "EC2 instance id of the party's host."
  value       = aws_instance.host.id
}

output "private_ip" {
  description = "Private IPv4 address of the host."
  value       = aws_instance.host.private_ip
}

output "endpoint" {
  description = "host:port of the party's MPyC runtime (null unless the party computes)."
  value       = local.is_compute ? "${var.private_ip}:${var.mpyc_port}" : null
}

output "role_arn" {
  description = "ARN of the host's IAM role."
  value       = aws_iam_role.host.arn
}

output "security_group_id" {
  description = "Security group of the host."
  value       = aws_security_group.host.id
}

output "ui_url" {
  description = "Direct URL of the Airflow UI for clients in ui_allowed_cidrs (null when the UI is reachable only by SSM port forwarding)."
  value       = length(var.ui_allowed_cidrs) > 0 ? "http://${aws_instance.host.private_ip}:${var.ui_port}" : null
}

output "ui_tunnel_command" {
  description = "Forwards the host's Airflow UI to http://localhost:<tunnel_local_port> through SSM Session Manager (needs the AWS CLI and its session-manager-plugin)."
  value       = "aws ssm start-session --region ${local.region} --target ${aws_instance.host.id} --document-name AWS-StartPortForwardingSession --parameters '{\"portNumber\":[\"${var.ui_port}\"],\"localPortNumber\":[\"${var.tunnel_local_port}\"]}'"
}

output "ui_password_command" {
  description = "Prints the password that airflow standalone generated for the UI user admin."
  value       = "aws ssm start-session --region ${local.region} --target ${aws_instance.host.id} --document-name AWS-StartInteractiveCommand --parameters '{\"command\":[\"sudo cat ${local.airflow_home}/simple_auth_manager_passwords.json.generated\"]}'"
}
