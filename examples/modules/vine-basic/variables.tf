# Vine fields the agent writes into terraform.tfvars.json, plus module variables from
# vines.terraform.variables. Extra attributes in the component objects (ids, engine
# versions ...) are accepted and ignored by the object type conversion.

variable "project_name" {
  type        = string
  description = "Vine project name; prefixes every generated name."
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "environment_stage" {
  type    = string
  default = "development"
}

variable "cluster" {
  description = "The vine's cluster configuration, or null for none."
  type = object({
    cluster_version   = optional(string, "1.30")
    instance_types    = optional(list(string), ["t3.medium"])
    node_min_size     = optional(number, 1)
    node_max_size     = optional(number, 3)
    node_desired_size = optional(number, 2)
  })
  default = null
}

variable "databases" {
  type = list(object({
    name           = string
    engine         = optional(string, "aurora-postgresql")
    engine_version = optional(string, "16.4")
    min_capacity   = optional(number, 0.5)
    max_capacity   = optional(number, 2)
  }))
  default  = []
  nullable = false
}

variable "caches" {
  type = list(object({
    name            = string
    engine          = optional(string, "redis")
    node_type       = optional(string, "cache.t4g.micro")
    num_cache_nodes = optional(number, 1)
  }))
  default  = []
  nullable = false
}

variable "network" {
  type    = any
  default = null
}

variable "apply_delay_s" {
  description = "Seconds the apply sleeps (a local-exec, built into Terraform core): for demos and cancel tests."
  type        = number
  default     = 0
}

variable "fail_apply" {
  description = "Make the apply fail on purpose (for testing failure reporting)."
  type        = bool
  default     = false
}
