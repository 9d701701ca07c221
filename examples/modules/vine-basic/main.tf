# A vine built from Terraform's built-in resources only: no provider is downloaded, so
# `terraform init` works offline. It stands in for real infrastructure and produces every
# output Vintner's finalizeDeployment() reads.

terraform {
  required_version = ">= 1.5.0"
}

locals {
  prefix    = "${var.project_name}-${var.environment_stage}"
  account   = "123456789012"
  databases = { for db in var.databases : db.name => db }
  caches    = { for c in var.caches : c.name => c }
}

resource "terraform_data" "cluster" {
  input = {
    name    = "${local.prefix}-eks"
    region  = var.region
    version = try(var.cluster.cluster_version, "1.30")
  }
}

resource "terraform_data" "database" {
  for_each = local.databases
  input = {
    identifier = "${local.prefix}-${each.key}"
    engine     = each.value.engine
  }
}

resource "terraform_data" "cache" {
  for_each = local.caches
  input = {
    id     = "${local.prefix}-${each.key}"
    engine = each.value.engine
  }
}

# A slow step for cancel tests and demos.
resource "terraform_data" "delay" {
  count            = var.apply_delay_s > 0 ? 1 : 0
  triggers_replace = [var.apply_delay_s]

  provisioner "local-exec" {
    # exec: the shell becomes the sleep, so interrupting the apply stops the sleep too.
    command = "echo 'waiting ${var.apply_delay_s}s'; exec sleep ${var.apply_delay_s}"
  }
}

resource "terraform_data" "failure" {
  count = var.fail_apply ? 1 : 0

  provisioner "local-exec" {
    command = "echo 'failing on purpose' >&2; exit 3"
  }
}
