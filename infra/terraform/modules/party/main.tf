# One party's host: an EC2 instance in a private subnet with a least-privilege instance profile,
# IMDSv2 only, an encrypted root volume, and a security group whose only ingress is the MPyC port
# from the other compute parties (and the UI port from ui_allowed_cidrs, empty by default).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.name_prefix}-${var.party.id}"
  is_compute = contains(var.party.roles, "compute")
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # The objects this party writes: <prefix>/<computation>/<run_key>/<kind>/<party_id>/<file>.
  # IAM's "*" also matches "/", so the pattern guarantees only that the party's id is a path
  # segment after at least three others. Objects are signed with the writer's Ed25519 key, so a
  # reader that checks the signer against the party id in the key rejects anything planted deeper.
  own_object_arn   = "${var.coordination.bucket_arn}/${var.coordination.federation_prefix}/*/*/*/${var.party.id}/*"
  keys_parameter   = "arn:${local.partition}:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter${var.keys_parameter_name}"
  ui_listen_host   = length(var.ui_allowed_cidrs) > 0 ? "0.0.0.0" : "127.0.0.1"
  airflow_home     = "/opt/mpc/airflow"
  coordination_url = "https://s3.${var.coordination.region}.${data.aws_partition.current.dns_suffix}"

  # AIRFLOW_CONN_MPC_COORDINATION on the host: no access keys, the instance profile signs.
  coordination_conn = jsonencode({
    conn_type = "aws"
    extra = {
      region_name  = var.coordination.region
      endpoint_url = local.coordination_url
    }
  })
}

# ---------------------------------------------------------------- IAM

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  name                 = local.name
  description          = "Instance role of MPC party ${var.party.id}: its own prefix in the coordination bucket, its own key parameter, SSM sessions."
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "party" {
  # Listing is not narrowed by an s3:prefix condition: S3 answers a GET/HEAD of a missing key
  # with 404 only to principals whose s3:ListBucket applies without one (403 otherwise), and the
  # sensors wait for objects that do not exist yet. The bucket holds nothing but the federation.
  statement {
    sid       = "ListCoordinationBucket"
    actions   = ["s3:ListBucket"]
    resources = [var.coordination.bucket_arn]
  }

  statement {
    sid       = "ReadFederationObjects"
    actions   = ["s3:GetObject"]
    resources = ["${var.coordination.bucket_arn}/${var.coordination.federation_prefix}/*"]
  }

  statement {
    sid       = "WriteOwnPrefixOnly"
    actions   = ["s3:PutObject"]
    resources = [local.own_object_arn]
  }

  statement {
    sid       = "UseBucketKeyThroughS3"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.coordination.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.coordination.region}.${data.aws_partition.current.dns_suffix}"]
    }
  }

  # SecureString parameters under the AWS managed key alias/aws/ssm need no extra KMS grant:
  # that key's policy lets every principal of the account decrypt through SSM.
  statement {
    sid       = "ReadOwnKeysParameter"
    actions   = ["ssm:GetParameter"]
    resources = [local.keys_parameter]
  }
}

resource "aws_iam_role_policy" "party" {
  name   = "coordination-and-keys"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.party.json
}

# SSM Session Manager (the shell and the UI port forwarding) and the SSM agent's own needs.
resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.host.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "host" {
  name = local.name
  role = aws_iam_role.host.name
}

# ---------------------------------------------------------------- network access

resource "aws_security_group" "host" {
  name        = local.name
  description = "MPC party ${var.party.id}: MPyC from peer compute parties only; no other ingress unless ui_allowed_cidrs"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "mpyc_from_peers" {
  for_each = local.is_compute ? toset(var.peer_cidrs) : toset([])

  security_group_id = aws_security_group.host.id
  description       = "MPyC from peer compute party ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.mpyc_port
  to_port           = var.mpyc_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ui_from_allowed" {
  for_each = toset(var.ui_allowed_cidrs)

  security_group_id = aws_security_group.host.id
  description       = "Airflow UI from allow-listed ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.ui_port
  to_port           = var.ui_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.host.id
  description       = "HTTPS: S3, SSM, KMS, package repositories, PyPI, the project git host"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "mpyc_to_peers" {
  for_each = local.is_compute ? toset(var.peer_cidrs) : toset([])

  security_group_id = aws_security_group.host.id
  description       = "MPyC to peer compute party ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.mpyc_port
  to_port           = var.mpyc_port
  cidr_ipv4         = each.value
}

# ---------------------------------------------------------------- host

resource "aws_instance" "host" {
  ami                         = var.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  private_ip                  = var.private_ip
  associate_public_ip_address = false
  vpc_security_group_ids      = [aws_security_group.host.id]
  iam_instance_profile        = aws_iam_instance_profile.host.name
  ebs_optimized               = true
  monitoring                  = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
  }

  # No secrets in here: the private keys are fetched from SSM by the bootstrap script at boot.
  user_data = templatefile("${path.module}/templates/user_data.sh.tftpl", {
    party_id              = var.party.id
    project_url           = var.project_source.url
    project_ref           = var.project_source.ref
    computation           = var.computation
    spec_b64              = base64encode(var.federation_spec_yaml)
    coordination_conn_b64 = base64encode(local.coordination_conn)
    keys_parameter        = var.keys_parameter_name
    aws_region            = local.region
    airflow_home          = local.airflow_home
    ui_port               = var.ui_port
    ui_host               = local.ui_listen_host
    compute_queue         = var.compute_queue
  })
  # A changed spec (new public keys, new peers) rebuilds the host from scratch, so a host always
  # runs the spec that `terraform output federation_spec` shows.
  user_data_replace_on_change = true

  tags = {
    Name     = local.name
    MpcParty = var.party.id
    MpcRoles = join(" ", var.party.roles)
  }

  lifecycle {
    # A newer AMI release must not replace a running party host; replace it deliberately with
    # `terraform apply -replace=...` instead.
    ignore_changes = [ami]
  }

  depends_on = [aws_iam_role_policy.party, aws_iam_role_policy_attachment.ssm_core]
}
