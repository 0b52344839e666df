"""The application layer: the `vigil` command, the demo, the embedded stack and the scenarios cut from the footage."""
