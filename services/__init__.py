"""Vigil's long-running services, one concern each."""
