output "endpoints" {
  description = "In-cluster endpoints (Kafka, Triton, ClickHouse, console, ...)."
  value       = module.deployment.endpoints
}

output "sizing" {
  description = "What the sizing model chose for the camera file."
  value       = module.deployment.sizing
}
