"""Anomaly scoring: per-camera scene features over event-time windows, autoencoder scores, known-anomaly rules."""
