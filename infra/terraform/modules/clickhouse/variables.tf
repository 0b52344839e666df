variable "namespace" {
  description = "Kubernetes namespace of the ClickHouse cluster, its Keeper and the migration Job."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace is a DNS-1123 label."
  }
}

variable "name" {
  description = "Name of the ClickHouseInstallation and the ClickHouseKeeperInstallation."
  type        = string
  default     = "vigil"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,14}[a-z0-9])?$", var.name))
    error_message = "name is a short DNS label (at most 16 characters: the operator builds pod names from it)."
  }
}

variable "shards" {
  description = "Shards (the sizing module's clickhouse.shards)."
  type        = number
  validation {
    condition     = var.shards >= 1 && floor(var.shards) == var.shards
    error_message = "shards is a whole number of at least 1."
  }
}

variable "zones" {
  description = "Availability zones, one replica of every shard in each (so losing a zone loses no data)."
  type        = list(string)
  validation {
    condition     = length(var.zones) >= 2 && length(distinct(var.zones)) == length(var.zones)
    error_message = "At least 2 distinct zones (replicas)."
  }
}

variable "image" {
  description = "ClickHouse server image (the migrations are tested on ClickHouse 26.9 through chDB)."
  type        = string
  default     = "clickhouse/clickhouse-server:25.8"
}

variable "keeper_image" {
  description = "ClickHouse Keeper image."
  type        = string
  default     = "clickhouse/clickhouse-keeper:25.8"
}

variable "keeper_replicas" {
  description = "Keeper nodes (odd; spread over the zones)."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 3, 5], var.keeper_replicas)
    error_message = "keeper_replicas is 1, 3 or 5."
  }
}

variable "storage" {
  description = "Data volume per ClickHouse replica (and the storage class, null = the cluster's default)."
  type = object({
    size  = optional(string, "500Gi")
    class = optional(string)
  })
  default = {}
}

variable "resources" {
  description = "CPU and memory per ClickHouse pod."
  type = object({
    cpu    = string
    memory = string
  })
  default = { cpu = "4", memory = "16Gi" }
}

variable "user" {
  description = "ClickHouse user the services connect as, and the Secret (name, key) holding its password."
  type = object({
    name            = optional(string, "vigil")
    password_secret = optional(string, "vigil-clickhouse")
    password_key    = optional(string, "password")
  })
  default = {}
}

variable "database" {
  description = "Database of Vigil's tables (created Replicated by the migration Job)."
  type        = string
  default     = "vigil"
}

variable "migration" {
  description = "The migration Job: the vigil image, the Secret key with the DSN it connects with (http://user:pw@host:8123/<database>), and the tables' TTL."
  type = object({
    image      = string
    dsn_secret = optional(string, "vigil-clickhouse")
    dsn_key    = optional(string, "dsn")
    ttl_days   = optional(number, 30)
  })
}

variable "pools" {
  description = "The node-pools module's pools output."
  type = map(object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, value = string, effect = string }))
    gpu           = bool
  }))
}

variable "zone_key" {
  description = "Node label of the zone."
  type        = string
  default     = "topology.kubernetes.io/zone"
}

variable "common_env" {
  description = "VIGIL_* settings the migration Job gets besides its DSN (the cluster's wiring: Settings reads them all)."
  type        = map(string)
  default     = {}
}
