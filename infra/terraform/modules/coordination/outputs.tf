output "bucket_name" {
  description = "Name of the coordination bucket."
  value       = aws_s3_bucket.coordination.id
}

output "bucket_arn" {
  description = "ARN of the coordination bucket."
  value       = aws_s3_bucket.coordination.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the coordination bucket."
  value       = aws_kms_key.bucket.arn
}

output "federation_prefix" {
  description = "Key prefix of the federation's objects."
  value       = var.federation_prefix
}

output "region" {
  description = "Region of the coordination bucket."
  value       = local.region
}

output "log_bucket_name" {
  description = "Bucket that receives the coordination bucket's server access logs."
  value       = aws_s3_bucket.logs.id
}
