"""Inference: micro-batch frame references across cameras, detect through Triton, track per camera, publish."""
