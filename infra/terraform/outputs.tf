output "federation_spec" {
  description = "The federation spec with the deployed bucket and MPyC endpoints (YAML). Every hosted party runs exactly this file as include/federations-deployed/<computation>.yaml."
  value       = local.federation_spec_yaml
}

output "parties" {
  description = "Per hosted party: instance id, private IP, MPyC endpoint, the UI address (direct URL if ui_allowed_cidrs is set) or SSM tunnel command, and the SSM parameter that must hold its private keys."
  value = {
    for id, host in module.party : id => {
      instance_id         = host.instance_id
      private_ip          = host.private_ip
      endpoint            = host.endpoint
      ui_url              = host.ui_url
      ui_tunnel_command   = host.ui_tunnel_command
      ui_local_url        = "http://localhost:${local.tunnel_local_port[id]}"
      ui_password_command = host.ui_password_command
      keys_parameter      = "/${var.name_prefix}/${id}/keys"
      role_arn            = host.role_arn
    }
  }
}

output "ui_tunnel_commands" {
  description = "Per hosted party, the command that forwards its Airflow UI to localhost (same as parties[*].ui_tunnel_command)."
  value       = { for id, host in module.party : id => host.ui_tunnel_command }
}

output "external_parties" {
  description = "Parties hosted in other AWS accounts: the IAM role each must create (with modules/party) to be granted its prefix in the coordination bucket."
  value = {
    for p in local.external_parties : p.id => {
      account_id = p.account_id
      region     = p.region
      endpoint   = p.endpoint
      role_arn   = "arn:${data.aws_partition.current.partition}:iam::${p.account_id}:role/${var.name_prefix}-${p.id}"
    }
  }
}

output "coordination_bucket" {
  description = "Name of the shared coordination bucket."
  value       = module.coordination.bucket_name
}

output "coordination_kms_key_arn" {
  description = "KMS key of the coordination bucket (external parties' roles need kms:Encrypt/Decrypt/GenerateDataKey on it)."
  value       = module.coordination.kms_key_arn
}

output "coordination_log_bucket" {
  description = "Bucket holding the coordination bucket's server access logs."
  value       = module.coordination.log_bucket_name
}
