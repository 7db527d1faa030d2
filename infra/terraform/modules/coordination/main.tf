# The shared coordination bucket: the only place where the parties meet besides the MPyC links.
#
# Key layout (enforced by each party's IAM policy, see modules/party):
#   <federation_prefix>/<computation>/<run_key>/<kind>/<party_id>/<file>
# Every party may list the bucket and read the federation prefix (objects meant for one
# recipient are sealed to its X25519 key, and every object is signed with its writer's Ed25519
# key); a party may write only keys whose <party_id> segment is its own id.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  bucket_name     = "${var.name_prefix}-coord-${local.account_id}-${local.region}"
  log_bucket_name = "${var.name_prefix}-logs-${local.account_id}-${local.region}"
  bucket_arn      = "arn:${local.partition}:s3:::${local.bucket_name}"

  external_role_arns = {
    for id, p in var.external_parties :
    id => "arn:${local.partition}:iam::${p.account_id}:role/${p.role_name}"
  }
}

# ---------------------------------------------------------------- KMS key of the bucket

resource "aws_kms_key" "bucket" {
  description             = "${var.name_prefix}: default encryption of the MPC coordination bucket"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days

  # A key policy's Resource "*" means "this key". The account root statement delegates access
  # to IAM policies (each hosted party's role gets Encrypt/Decrypt/GenerateDataKey via S3 only);
  # external parties' roles are named explicitly, also only via S3.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid       = "AccountAdministersKeyThroughIAM"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      }],
      length(var.external_parties) == 0 ? [] : [{
        Sid       = "ExternalPartiesUseKeyThroughS3"
        Effect    = "Allow"
        Principal = { AWS = distinct([for id, p in var.external_parties : "arn:${local.partition}:iam::${p.account_id}:root"]) }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${local.region}.${data.aws_partition.current.dns_suffix}" }
          ArnEquals    = { "aws:PrincipalArn" = values(local.external_role_arns) }
        }
      }]
    )
  })
}

resource "aws_kms_alias" "bucket" {
  name          = "alias/${var.name_prefix}-coordination"
  target_key_id = aws_kms_key.bucket.key_id
}

# ---------------------------------------------------------------- coordination bucket

resource "aws_s3_bucket" "coordination" {
  #checkov:skip=CKV_AWS_144:Cross-region replication would copy every party's shares to a second region and double the cost; a run's objects are reproducible by re-running the DAGs, and versioning protects against overwrites.
  #checkov:skip=CKV2_AWS_62:The parties poll for objects with their Airflow sensors; there is no consumer for S3 event notifications.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "coordination" {
  bucket = aws_s3_bucket.coordination.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "coordination" {
  bucket                  = aws_s3_bucket.coordination.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "coordination" {
  bucket = aws_s3_bucket.coordination.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "coordination" {
  bucket = aws_s3_bucket.coordination.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.bucket.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "coordination" {
  bucket = aws_s3_bucket.coordination.id

  rule {
    id     = "expire-old-runs"
    status = "Enabled"
    filter {
      prefix = "${var.federation_prefix}/"
    }
    expiration {
      days = var.run_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "tidy-versions"
    status = "Enabled"
    filter {}
    expiration {
      expired_object_delete_marker = true
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.coordination]
}

resource "aws_s3_bucket_logging" "coordination" {
  bucket        = aws_s3_bucket.coordination.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.bucket_name}/"

  depends_on = [aws_s3_bucket_policy.logs]
}

data "aws_iam_policy_document" "coordination" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyTlsOlderThan12"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  statement {
    sid     = "DenyOtherEncryptionThanKms"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${local.bucket_arn}/*"]
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }

  # Parties in other AWS accounts: the same three grants a hosted party's IAM policy has.
  # The principal is the account, narrowed to the party's role by aws:PrincipalArn, so the
  # policy is valid before the other organisation has created the role.
  dynamic "statement" {
    for_each = var.external_parties
    content {
      sid     = "ExternalParty${replace(title(replace(statement.key, "_", " ")), " ", "")}ListBucket"
      effect  = "Allow"
      actions = ["s3:ListBucket"]
      principals {
        type        = "AWS"
        identifiers = ["arn:${local.partition}:iam::${statement.value.account_id}:root"]
      }
      resources = [local.bucket_arn]
      condition {
        test     = "ArnEquals"
        variable = "aws:PrincipalArn"
        values   = [local.external_role_arns[statement.key]]
      }
    }
  }

  dynamic "statement" {
    for_each = var.external_parties
    content {
      sid     = "ExternalParty${replace(title(replace(statement.key, "_", " ")), " ", "")}ReadFederation"
      effect  = "Allow"
      actions = ["s3:GetObject"]
      principals {
        type        = "AWS"
        identifiers = ["arn:${local.partition}:iam::${statement.value.account_id}:root"]
      }
      resources = ["${local.bucket_arn}/${var.federation_prefix}/*"]
      condition {
        test     = "ArnEquals"
        variable = "aws:PrincipalArn"
        values   = [local.external_role_arns[statement.key]]
      }
    }
  }

  dynamic "statement" {
    for_each = var.external_parties
    content {
      sid     = "ExternalParty${replace(title(replace(statement.key, "_", " ")), " ", "")}WriteOwnPrefix"
      effect  = "Allow"
      actions = ["s3:PutObject"]
      principals {
        type        = "AWS"
        identifiers = ["arn:${local.partition}:iam::${statement.value.account_id}:root"]
      }
      resources = ["${local.bucket_arn}/${var.federation_prefix}/*/*/*/${statement.key}/*"]
      condition {
        test     = "ArnEquals"
        variable = "aws:PrincipalArn"
        values   = [local.external_role_arns[statement.key]]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "coordination" {
  bucket = aws_s3_bucket.coordination.id
  policy = data.aws_iam_policy_document.coordination.json

  depends_on = [aws_s3_bucket_public_access_block.coordination]
}

# ---------------------------------------------------------------- access-log bucket

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This bucket receives the coordination bucket's server access logs; logging the log bucket into itself would log its own log deliveries without end.
  #checkov:skip=CKV_AWS_144:Access logs of a testbed are not worth a second region; versioning and the lifecycle rule keep them for access_log_expiration_days.
  #checkov:skip=CKV_AWS_145:S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; the logs are encrypted with SSE-S3 (AES-256) instead.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the access-log bucket.
  bucket        = local.log_bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_log_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "S3ServerAccessLogDelivery"
    effect  = "Allow"
    actions = ["s3:PutObject"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    resources = ["${aws_s3_bucket.logs.arn}/s3-access/*"]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
