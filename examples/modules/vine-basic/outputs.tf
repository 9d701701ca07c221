locals {
  cluster_name = terraform_data.cluster.output.name
  db_out = {
    for name, db in terraform_data.database : name => {
      cluster_endpoint              = "${db.output.identifier}.cluster-abc123.${var.region}.rds.amazonaws.com"
      cluster_reader_endpoint       = "${db.output.identifier}.cluster-ro-abc123.${var.region}.rds.amazonaws.com"
      cluster_identifier            = db.output.identifier
      cluster_arn                   = "arn:aws:rds:${var.region}:${local.account}:cluster:${db.output.identifier}"
      master_credentials_secret_arn = "arn:aws:secretsmanager:${var.region}:${local.account}:secret:${db.output.identifier}-master"
      extra_credentials_secret_arn  = "arn:aws:secretsmanager:${var.region}:${local.account}:secret:${db.output.identifier}-extra"
      credentials_kms_key_arn       = "arn:aws:kms:${var.region}:${local.account}:key/${db.id}"
    }
  }
  cache_out = {
    for name, c in terraform_data.cache : name => {
      primary_endpoint_address = "master.${c.output.id}.abc123.${var.region}.cache.amazonaws.com"
      reader_endpoint_address  = "replica.${c.output.id}.abc123.${var.region}.cache.amazonaws.com"
    }
  }
  first_db    = length(local.db_out) > 0 ? values(local.db_out)[0] : null
  first_cache = length(local.cache_out) > 0 ? values(local.cache_out)[0] : null
}

output "cluster_name" {
  value = local.cluster_name
}

output "cluster_endpoint" {
  value = "https://${upper(substr(md5(terraform_data.cluster.id), 0, 16))}.gr7.${var.region}.eks.amazonaws.com"
}

output "eks_cluster_arn" {
  value = "arn:aws:eks:${var.region}:${local.account}:cluster/${local.cluster_name}"
}

output "argocd_url" {
  value = "https://argocd.${local.prefix}.example.com"
}

output "argocd_admin_password" {
  value     = substr(sha256("argocd-${terraform_data.cluster.id}"), 0, 24)
  sensitive = true
}

# Single-value database / cache outputs: fill a vine with exactly one row.
output "rds_cluster_endpoint" {
  value = try(local.first_db.cluster_endpoint, null)
}
output "rds_cluster_reader_endpoint" {
  value = try(local.first_db.cluster_reader_endpoint, null)
}
output "rds_cluster_identifier" {
  value = try(local.first_db.cluster_identifier, null)
}
output "rds_cluster_arn" {
  value = try(local.first_db.cluster_arn, null)
}
output "rds_master_credentials_secret_arn" {
  value = try(local.first_db.master_credentials_secret_arn, null)
}
output "rds_extra_credentials_secret_arn" {
  value = try(local.first_db.extra_credentials_secret_arn, null)
}
output "rds_credentials_kms_key_arn" {
  value = try(local.first_db.credentials_kms_key_arn, null)
}
output "redis_primary_endpoint_address" {
  value = try(local.first_cache.primary_endpoint_address, null)
}
output "redis_reader_endpoint_address" {
  value = try(local.first_cache.reader_endpoint_address, null)
}

# Multi-row maps: name -> object, one entry per database / cache row.
output "databases" {
  value = local.db_out
}

output "caches" {
  value = local.cache_out
}
