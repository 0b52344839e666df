# Stage 2 (after ../operators): every object the provider-free deployment module renders, applied as
# kubernetes_manifest in three waves: namespaces, core objects, then custom resources (their CRDs come from stage 1).
# Secrets are not created here (their values would sit in the state): see the deployment guide.

module "deployment" {
  source                      = "../../modules/deployment"
  cameras_yaml                = file(var.cameras_file)
  zones                       = var.zones
  images                      = var.images
  frame_store_uri             = var.frame_store_uri
  checkpoint_uri              = var.checkpoint_uri
  model_repository            = var.model_repository
  kafka                       = var.kafka
  prometheus_url              = var.prometheus_url
  settings                    = var.settings
  secret_env                  = var.secret_env
  sizing                      = var.sizing
  feed_outputs                = var.feed_outputs
  service_account_annotations = var.service_account_annotations
}

locals {
  key = { for wave, objects in module.deployment.manifests : wave => {
    for m in objects : join("/", compact([m.kind, try(m.metadata.namespace, ""), m.metadata.name])) => m
  } }
}

resource "kubernetes_manifest" "namespaces" {
  for_each = local.key.namespaces
  manifest = each.value
}

resource "kubernetes_manifest" "core" {
  for_each   = local.key.core
  manifest   = each.value
  depends_on = [kubernetes_manifest.namespaces]
}

resource "kubernetes_manifest" "custom" {
  for_each   = local.key.custom
  manifest   = each.value
  depends_on = [kubernetes_manifest.core]
}
