"""PyFlink jobs. Each keeps its logic in plain classes and a connector-free `build_pipeline(stream)`."""

import vigil  # noqa: F401,E402 - first: its process-wide thread defaults must precede numpy
