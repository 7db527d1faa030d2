# Inputs of the multi-party testbed. See docs/terraform.md for an example terraform.tfvars.

variable "region" {
  type        = string
  description = "AWS region of the coordination bucket and of every party host deployed by this configuration."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability Zone of the subnets and all party hosts. null: <region>a. Pick another zone if the instance type is not offered there."
  default     = null

  validation {
    condition     = var.availability_zone == null || can(regex("^${var.region}[a-z]$", var.availability_zone))
    error_message = "availability_zone must be a zone of var.region, such as us-east-1b."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (bucket, IAM roles, SSM parameters /<name_prefix>/<party_id>/keys). Lower case, 3-20 characters."
  default     = "mpc-testbed"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "parties" {
  description = <<-EOT
    The parties of the federation, in order. Each party is an organisation with its own Airflow.
      id            party id as in the federation spec (a-z, 0-9, _; starts with a letter).
      roles         subset of ["input", "compute", "recipient"].
      instance_type EC2 instance type of the party's host (x86_64); null means default_instance_type.
      account_id    null: this configuration hosts the party. Set: the party's organisation runs its own
                    host in that AWS account (with modules/party); this configuration only grants the
                    role arn:aws:iam::<account_id>:role/<name_prefix>-<id> its prefix in the bucket.
      region        region of an external party's host (informational); hosted parties run in var.region.
      endpoint      "IPv4:port" where an external compute party's MPyC listens, reachable from this VPC.
    A hosted party's private IP is the (host_number_offset + position)-th address of the private subnet,
    so keep the order stable: removing a party from the middle readdresses the hosts after it.
  EOT
  type = list(object({
    id            = string
    roles         = list(string)
    instance_type = optional(string)
    account_id    = optional(string)
    region        = optional(string)
    endpoint      = optional(string)
  }))
  default = [
    { id = "company_a", roles = ["input", "compute"] },
    { id = "company_b", roles = ["input", "compute"] },
    { id = "company_c", roles = ["input", "compute"] },
    { id = "company_d", roles = ["input"] },
    { id = "company_e", roles = ["input"] },
    { id = "regulator", roles = ["recipient"] },
  ]

  validation {
    condition     = alltrue([for p in var.parties : can(regex("^[a-z][a-z0-9_]{0,30}$", p.id))])
    error_message = "Every party id must match ^[a-z][a-z0-9_]{0,30}$."
  }
  validation {
    condition     = length(distinct([for p in var.parties : p.id])) == length(var.parties)
    error_message = "Party ids must be unique."
  }
  validation {
    condition = alltrue([
      for p in var.parties :
      length(p.roles) > 0 && length(distinct(p.roles)) == length(p.roles) &&
      length(setsubtract(p.roles, ["input", "compute", "recipient"])) == 0
    ])
    error_message = "Every party needs one or more distinct roles out of input, compute and recipient."
  }
  validation {
    condition     = length([for p in var.parties : p.id if contains(p.roles, "compute")]) >= 2 * var.threshold + 1
    error_message = "MPyC needs threshold < m/2: at least 2 * threshold + 1 compute parties (3 for threshold 1)."
  }
  validation {
    condition     = length([for p in var.parties : p.id if contains(p.roles, "input")]) >= 1
    error_message = "At least one party must have the input role."
  }
  validation {
    condition     = length([for p in var.parties : p.id if contains(p.roles, "recipient")]) >= 1
    error_message = "At least one party must have the recipient role."
  }
  validation {
    condition = alltrue([
      for p in var.parties :
      p.instance_type == null || (can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", p.instance_type)) && !can(regex("^[a-z]+[0-9]+[a-z]*g[a-z]*\\.", p.instance_type)))
    ])
    error_message = "instance_type must be an x86_64 EC2 instance type (the AMI is x86_64; Graviton types such as t4g are not supported)."
  }
  validation {
    condition     = alltrue([for p in var.parties : p.account_id == null || can(regex("^[0-9]{12}$", p.account_id))])
    error_message = "account_id must be a 12-digit AWS account id (or null for a party hosted here)."
  }
  validation {
    condition     = alltrue([for p in var.parties : p.account_id != null || p.region == null || p.region == var.region])
    error_message = "A party hosted by this configuration (no account_id) runs in var.region: leave its region unset."
  }
  validation {
    condition = alltrue([
      for p in var.parties :
      p.account_id == null ? p.endpoint == null : (
        contains(p.roles, "compute")
        ? can(regex("^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9]):[0-9]{1,5}$", p.endpoint))
        : p.endpoint == null
      )
    ])
    error_message = "endpoint is required (\"IPv4:port\") for an external compute party and must be unset otherwise; hosted parties get theirs from their fixed private IP."
  }
}

variable "threshold" {
  type        = number
  description = "MPyC threshold t: results stay secret unless more than t compute parties collude. Needs at least 2t+1 compute parties."
  default     = 1

  validation {
    condition     = var.threshold >= 1 && floor(var.threshold) == var.threshold
    error_message = "threshold must be a whole number >= 1 (threshold 0 gives every compute party the plaintext)."
  }
}

variable "default_instance_type" {
  type        = string
  description = "EC2 instance type of a party host whose entry in parties sets none (x86_64; Airflow standalone plus local Spark want >= 8 GiB)."
  default     = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.default_instance_type)) && !can(regex("^[a-z]+[0-9]+[a-z]*g[a-z]*\\.", var.default_instance_type))
    error_message = "default_instance_type must be an x86_64 EC2 instance type such as t3.large."
  }
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size in GiB of each host's encrypted gp3 root volume (OS, the project's virtualenv, Airflow logs, work files)."
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 20 && var.root_volume_size_gb <= 1000
    error_message = "root_volume_size_gb must be between 20 and 1000."
  }
}

variable "ami_id" {
  type        = string
  description = "AMI of the party hosts. null: the latest Amazon Linux 2023 x86_64 AMI (read from the public SSM parameter at the first apply; later AMI releases do not replace running hosts)."
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the testbed VPC. Its first /24 holds the NAT gateway, its second /24 the party hosts."
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 22, false)
    error_message = "vpc_cidr must be an IPv4 CIDR block of size /22 or larger."
  }
}

variable "host_number_offset" {
  type        = number
  description = "Host number (within the private subnet) of the first hosted party; the i-th hosted party gets offset + i. AWS reserves .0-.3."
  default     = 10

  validation {
    condition     = var.host_number_offset >= 4 && var.host_number_offset <= 200
    error_message = "host_number_offset must be between 4 and 200."
  }
}

variable "mpyc_port" {
  type        = number
  description = "TCP port on which compute parties' MPyC runtimes listen for each other."
  default     = 11365

  validation {
    condition     = var.mpyc_port >= 1024 && var.mpyc_port <= 65535 && var.mpyc_port != var.airflow_ui_port
    error_message = "mpyc_port must be an unprivileged port (1024-65535) different from airflow_ui_port."
  }
}

variable "airflow_ui_port" {
  type        = number
  description = "TCP port of each party's Airflow API server and UI on its host."
  default     = 8080

  validation {
    condition     = var.airflow_ui_port >= 1024 && var.airflow_ui_port <= 55535
    error_message = "airflow_ui_port must be between 1024 and 55535 (the Airflow log servers use port + 1000 and + 2000)."
  }
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs (e.g. a VPN or peered office network routed into the VPC) allowed to reach the Airflow UI port directly. Empty: the UI is reachable only through SSM port forwarding."
  default     = []

  validation {
    condition     = alltrue([for c in var.ui_allowed_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "ui_allowed_cidrs must be IPv4 CIDR blocks."
  }
  validation {
    condition     = alltrue([for c in var.ui_allowed_cidrs : try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "ui_allowed_cidrs entries must be /8 or narrower; 0.0.0.0/0 and other huge ranges are refused."
  }
}

variable "project_source" {
  type = object({
    url = string
    ref = string
  })
  description = "Where each host fetches the project: an https git URL and a branch, tag or commit to check out."

  validation {
    condition     = can(regex("^https://[A-Za-z0-9._~:/@%+-]+$", var.project_source.url))
    error_message = "project_source.url must be an https:// git URL (hosts may only reach HTTPS) without quotes or spaces."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{1,200}$", var.project_source.ref)) && !startswith(var.project_source.ref, "-")
    error_message = "project_source.ref must be a branch, tag or commit (letters, digits, . _ / -)."
  }
}

variable "federation_prefix" {
  type        = string
  description = "Key prefix in the coordination bucket under which the federation's objects live: <prefix>/<computation>/<run_key>/<kind>/<party_id>/..."
  default     = "federations"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.federation_prefix))
    error_message = "federation_prefix must be one path segment of a-z, 0-9, _ and -."
  }
}

variable "computation" {
  type        = string
  description = "Name of the joint computation in the rendered federation spec (also its file name on the hosts)."
  default     = "taxi_hhi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.computation))
    error_message = "computation must match ^[a-z][a-z0-9_]{0,62}$."
  }
}

variable "schedule" {
  type        = string
  description = "Cron schedule of the computation's DAG in every party's Airflow (UTC)."
  default     = "0 3 * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5 || startswith(var.schedule, "@")
    error_message = "schedule must be a five-field cron expression or an Airflow preset such as @daily."
  }
}

variable "program_file" {
  type        = string
  description = "The MPyC program of the computation, relative to the spec file's folder (include/federations-deployed on the hosts)."
  default     = "../programs/hhi.py"

  validation {
    condition     = endswith(var.program_file, ".py") && !startswith(var.program_file, "/")
    error_message = "program_file must be a relative path to a .py file."
  }
}

variable "aggregation_job" {
  type        = string
  description = "The Spark job that aggregates each input party's local data, relative to the spec file's folder."
  default     = "../jobs/taxi_revenue.py"

  validation {
    condition     = endswith(var.aggregation_job, ".py") && !startswith(var.aggregation_job, "/")
    error_message = "aggregation_job must be a relative path to a .py file."
  }
}

variable "aggregation_period_months" {
  type        = number
  description = "Length in months of the period each input party aggregates per run."
  default     = 3

  validation {
    condition     = var.aggregation_period_months >= 1 && var.aggregation_period_months <= 120 && floor(var.aggregation_period_months) == var.aggregation_period_months
    error_message = "aggregation_period_months must be a whole number between 1 and 120."
  }
}

variable "party_public_keys" {
  type = map(object({
    sign        = string
    box         = string
    certificate = string
  }))
  description = "Public keys per party id (Ed25519 signing key, X25519 box key, TLS certificate) as written by the party key tool; merged into the rendered federation spec. Public material only: private keys go to SSM, never here."
  default     = {}

  validation {
    condition     = alltrue([for id in keys(var.party_public_keys) : contains([for p in var.parties : p.id], id)])
    error_message = "party_public_keys has an entry for an id that is not in parties."
  }
}

variable "run_expiration_days" {
  type        = number
  description = "Days after which objects of old runs under the federation prefix expire from the coordination bucket."
  default     = 90

  validation {
    condition     = var.run_expiration_days >= 1 && var.run_expiration_days <= 3650
    error_message = "run_expiration_days must be between 1 and 3650."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which overwritten (noncurrent) object versions are deleted from the coordination bucket."
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650
    error_message = "noncurrent_version_expiration_days must be between 1 and 3650."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete the coordination and log buckets even though they still hold objects (and object versions). Keep false outside throwaway testbeds."
  default     = false
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before a destroyed KMS key is deleted (AWS allows 7-30 days)."
  default     = 7

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow log group in CloudWatch Logs."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs supports (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags applied to every resource through the provider's default_tags."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : length(k) <= 128 && !startswith(lower(k), "aws:")])
    error_message = "Tag keys must be at most 128 characters and must not start with aws:."
  }
}
