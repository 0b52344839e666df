"""The evidence service: a snapshot and an H.264 clip for every incident, written to the frame store."""
