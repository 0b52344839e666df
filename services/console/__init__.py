"""The operator console: live camera tiles, the incident queue and operators' verdicts (`vigil console`)."""
