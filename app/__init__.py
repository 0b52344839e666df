"""The application layer: the `vigil` command, the demo, the embedded stack and the scenarios cut from the footage."""

import vigil  # noqa: F401,E402 - first: its process-wide thread defaults must precede numpy
