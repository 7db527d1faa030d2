terraform {
  # Cross-variable references in validation blocks (see variables.tf) need Terraform 1.9.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pessimistic pin: any 6.x from 6.0 on, never 7.0. `terraform init` writes the exact
      # version and its checksums to .terraform.lock.hcl; commit that file with your tfvars.
      version = "~> 6.0"
    }
  }
}
