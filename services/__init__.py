"""Vigil's long-running services, one concern each."""

import vigil  # noqa: F401,E402 - first: its process-wide thread defaults must precede numpy
