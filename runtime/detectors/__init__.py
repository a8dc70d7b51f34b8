"""Sensitivity detectors: PII and secrets, each returning masked evidence."""
