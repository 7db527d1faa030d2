provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project    = "mpc-federation"
      Deployment = var.name_prefix
      ManagedBy  = "terraform"
    })
  }
}
