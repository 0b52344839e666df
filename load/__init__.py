import vigil  # noqa: F401 - first: its process-wide thread defaults must precede numpy
