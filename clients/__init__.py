"""Registered OAuth clients (relying parties) and their registration."""
