"""Scenarios of the device demo (``make demo``): each module exposes ``run(issuer, say)``."""
