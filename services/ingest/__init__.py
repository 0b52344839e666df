"""Ingest: decode camera streams with PyAV, sample them, store frames and publish `FrameRef`s and `CameraStatus`."""
