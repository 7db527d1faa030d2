variable "name_prefix" {
  type        = string
  description = "Prefix of the names of the party's IAM role, instance profile, security group and host."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters of a-z, 0-9 and '-'."
  }
}

variable "party" {
  type = object({
    id    = string
    roles = list(string)
  })
  description = "The party this host belongs to: its id in the federation spec and its roles."

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,30}$", var.party.id))
    error_message = "party.id must match ^[a-z][a-z0-9_]{0,30}$."
  }
  validation {
    condition     = length(var.party.roles) > 0 && length(setsubtract(var.party.roles, ["input", "compute", "recipient"])) == 0
    error_message = "party.roles must be a non-empty subset of input, compute and recipient."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of the party's host (x86_64)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must be an EC2 instance type such as t3.large."
  }
}

variable "ami_id" {
  type        = string
  description = "AMI of the host: Amazon Linux 2023 x86_64 (the user data uses dnf and the preinstalled AWS CLI and SSM agent)."

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size in GiB of the encrypted gp3 root volume."
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 20
    error_message = "root_volume_size_gb must be at least 20."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the host's security group."

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_id" {
  type        = string
  description = "Private subnet of the host (no public IP is assigned; egress goes through a NAT gateway)."

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123456789abcdef0."
  }
}

variable "private_ip" {
  type        = string
  description = "Fixed private IPv4 address of the host inside subnet_id. Fixed so that peers' security-group rules and the federation spec can name it before the host exists."

  validation {
    condition     = can(regex("^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$", var.private_ip))
    error_message = "private_ip must be an IPv4 address."
  }
}

variable "peer_cidrs" {
  type        = list(string)
  description = "The other compute parties' addresses as /32 CIDRs. A compute party's MPyC port accepts connections from these and nothing else; other roles open no MPyC port."
  default     = []

  validation {
    condition     = alltrue([for c in var.peer_cidrs : can(cidrhost(c, 0)) && endswith(c, "/32")])
    error_message = "peer_cidrs must be single IPv4 addresses written as /32 CIDRs."
  }
}

variable "mpyc_port" {
  type        = number
  description = "TCP port of the MPyC runtime."
  default     = 11365

  validation {
    condition     = var.mpyc_port >= 1024 && var.mpyc_port <= 65535
    error_message = "mpyc_port must be between 1024 and 65535."
  }
}

variable "compute_queue" {
  type        = string
  description = "Airflow queue of the party's compute task ([mpc] compute_queue, AIRFLOW__MPC__COMPUTE_QUEUE): the Celery workers at the party's MPyC endpoint listen on it. Empty: the default queue (airflow standalone on the host runs every queue)."
  default     = ""

  validation {
    condition     = can(regex("^([A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$", var.compute_queue))
    error_message = "compute_queue must be empty or up to 100 characters of A-Z, a-z, 0-9, '_', '.', '-'."
  }
}

variable "ui_port" {
  type        = number
  description = "TCP port of Airflow's API server and UI on the host."
  default     = 8080

  validation {
    condition     = var.ui_port >= 1024 && var.ui_port <= 55535
    error_message = "ui_port must be between 1024 and 55535."
  }
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs allowed to reach the UI port directly. Empty: Airflow listens on 127.0.0.1 only and the UI is reachable through SSM port forwarding."
  default     = []

  validation {
    condition     = alltrue([for c in var.ui_allowed_cidrs : can(cidrhost(c, 0)) && try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "ui_allowed_cidrs must be IPv4 CIDRs of size /8 or narrower."
  }
}

variable "tunnel_local_port" {
  type        = number
  description = "Local port suggested in the SSM port-forwarding command of the output ui_tunnel_command."
  default     = 18080

  validation {
    condition     = var.tunnel_local_port >= 1024 && var.tunnel_local_port <= 65535
    error_message = "tunnel_local_port must be between 1024 and 65535."
  }
}

variable "coordination" {
  type = object({
    bucket_name       = string
    bucket_arn        = string
    kms_key_arn       = string
    federation_prefix = string
    region            = string
  })
  description = "The coordination bucket (outputs of modules/coordination): the party may read the federation prefix and write only its own keys."
}

variable "keys_parameter_name" {
  type        = string
  description = "SSM Parameter Store SecureString with the party's private keys (the value of AIRFLOW_CONN_MPC_PARTY_KEYS). Created by the party outside Terraform so that the keys never enter state or user data."

  validation {
    condition     = can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.keys_parameter_name))
    error_message = "keys_parameter_name must be a hierarchical SSM parameter name such as /mpc-testbed/company_a/keys."
  }
}

variable "computation" {
  type        = string
  description = "Name of the computation; the spec is written to include/federations-deployed/<computation>.yaml on the host."

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.computation))
    error_message = "computation must match ^[a-z][a-z0-9_]{0,62}$."
  }
}

variable "federation_spec_yaml" {
  type        = string
  description = "The rendered federation spec (public information: parties, roles, endpoints, public keys)."

  validation {
    condition     = length(var.federation_spec_yaml) > 0 && length(var.federation_spec_yaml) < 8000
    error_message = "federation_spec_yaml must be non-empty and small enough for EC2 user data (16 KiB after base64)."
  }
}

variable "project_source" {
  type = object({
    url = string
    ref = string
  })
  description = "https git URL and ref of the project that the host checks out and bootstraps."

  validation {
    condition     = can(regex("^https://[A-Za-z0-9._~:/@%+-]+$", var.project_source.url)) && can(regex("^[A-Za-z0-9._/-]{1,200}$", var.project_source.ref))
    error_message = "project_source needs an https:// URL and a ref of letters, digits, . _ / -."
  }
}
