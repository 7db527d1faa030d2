# N-party MPC federation testbed: one coordination bucket and one EC2 host per party, each with
# its own Airflow. `terraform apply` stands it up, `terraform destroy` removes it; see
# docs/terraform.md.

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : one(data.aws_ssm_parameter.al2023[*].insecure_value)

  # Parties without account_id get a host here; the others run their own (see variables.tf).
  hosted_parties   = [for p in var.parties : p if p.account_id == null]
  external_parties = [for p in var.parties : p if p.account_id != null]

  # Fixed private addresses, known before any host exists: the federation spec and the peers'
  # security-group rules can name them without a dependency cycle.
  host_ip = {
    for i, p in local.hosted_parties : p.id => cidrhost(local.private_subnet_cidr, var.host_number_offset + i)
  }
  tunnel_local_port = { for i, p in local.hosted_parties : p.id => 18080 + i }

  # MPyC endpoints of all compute parties, hosted or external.
  compute_endpoints = {
    for p in var.parties : p.id => (
      p.account_id == null ? "${try(local.host_ip[p.id], "")}:${var.mpyc_port}" : p.endpoint
    ) if contains(p.roles, "compute")
  }
  compute_cidrs = { for id, ep in local.compute_endpoints : id => "${split(":", ep)[0]}/32" }

  # Each hosted party's peers: every other compute party, and nothing else.
  peer_cidrs = {
    for p in local.hosted_parties : p.id => [for id, cidr in local.compute_cidrs : cidr if id != p.id]
  }

  federation_spec = {
    computation = var.computation
    schedule    = var.schedule
    program     = { file = var.program_file }
    aggregation = {
      job    = var.aggregation_job
      period = { months = var.aggregation_period_months }
    }
    threshold = var.threshold
    coordination = {
      bucket = module.coordination.bucket_name
      prefix = var.federation_prefix
    }
    parties = [
      for p in var.parties : merge(
        { id = p.id, roles = p.roles },
        { for k, v in { endpoint = lookup(local.compute_endpoints, p.id, null) } : k => v if v != null },
        { for k, v in { keys = lookup(var.party_public_keys, p.id, null) } : k => v if v != null },
      )
    ]
  }
  federation_spec_yaml = yamlencode(local.federation_spec)
}

module "coordination" {
  source = "./modules/coordination"

  name_prefix       = var.name_prefix
  federation_prefix = var.federation_prefix
  external_parties = {
    for p in local.external_parties : p.id => {
      account_id = p.account_id
      role_name  = "${var.name_prefix}-${p.id}"
    }
  }
  run_expiration_days                = var.run_expiration_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  force_destroy                      = var.force_destroy
  kms_deletion_window_days           = var.kms_deletion_window_days
}

module "party" {
  source   = "./modules/party"
  for_each = { for p in local.hosted_parties : p.id => p }

  name_prefix         = var.name_prefix
  party               = { id = each.value.id, roles = each.value.roles }
  instance_type       = coalesce(each.value.instance_type, var.default_instance_type)
  ami_id              = local.ami_id
  root_volume_size_gb = var.root_volume_size_gb

  vpc_id = aws_vpc.testbed.id
  # Taken from the route-table association so that hosts boot only once the NAT route exists:
  # cloud-init installs packages and the project at first boot.
  subnet_id         = aws_route_table_association.private.subnet_id
  private_ip        = local.host_ip[each.key]
  peer_cidrs        = local.peer_cidrs[each.key]
  mpyc_port         = var.mpyc_port
  ui_port           = var.airflow_ui_port
  ui_allowed_cidrs  = var.ui_allowed_cidrs
  tunnel_local_port = local.tunnel_local_port[each.key]
  # The compute task's queue: the workers at the party's MPyC endpoint listen on it.
  compute_queue = contains(each.value.roles, "compute") ? "mpc-compute-${each.value.id}" : ""

  coordination = {
    bucket_name       = module.coordination.bucket_name
    bucket_arn        = module.coordination.bucket_arn
    kms_key_arn       = module.coordination.kms_key_arn
    federation_prefix = module.coordination.federation_prefix
    region            = module.coordination.region
  }
  keys_parameter_name  = "/${var.name_prefix}/${each.key}/keys"
  computation          = var.computation
  federation_spec_yaml = local.federation_spec_yaml
  project_source       = var.project_source
}
