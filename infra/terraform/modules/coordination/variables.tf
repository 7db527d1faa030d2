variable "name_prefix" {
  type        = string
  description = "Prefix of the names of the bucket, its log bucket and its KMS key alias."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters of a-z, 0-9 and '-'."
  }
}

variable "federation_prefix" {
  type        = string
  description = "Key prefix under which the federation's objects live: <prefix>/<computation>/<run_key>/<kind>/<party_id>/..."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.federation_prefix))
    error_message = "federation_prefix must be one path segment of a-z, 0-9, _ and -."
  }
}

variable "external_parties" {
  type = map(object({
    account_id = string
    role_name  = string
  }))
  description = "Parties hosted in other AWS accounts, by party id: the bucket policy and key policy grant the role <role_name> in <account_id> the same access a hosted party's IAM policy gives it."
  default     = {}

  validation {
    condition = alltrue([
      for id, p in var.external_parties :
      can(regex("^[a-z][a-z0-9_]{0,30}$", id)) && can(regex("^[0-9]{12}$", p.account_id)) && can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", p.role_name))
    ])
    error_message = "external_parties needs party ids as keys, 12-digit account ids and valid IAM role names."
  }
}

variable "run_expiration_days" {
  type        = number
  description = "Days after which objects of old runs under the federation prefix expire."

  validation {
    condition     = var.run_expiration_days >= 1
    error_message = "run_expiration_days must be at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which noncurrent object versions are deleted."

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_expiration_days" {
  type        = number
  description = "Days after which server access logs of the coordination bucket expire."
  default     = 365

  validation {
    condition     = var.access_log_expiration_days >= 1
    error_message = "access_log_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Allow destroying the buckets while they still hold objects."
  default     = false
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before a destroyed KMS key is deleted."
  default     = 7

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}
