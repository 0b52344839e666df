"""Anomaly models: per-camera autoencoder training, validation and the versioned model registry."""
