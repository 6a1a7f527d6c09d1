"""Device health (issue 7): facts per device, per-client rules, and their outcome at every
token issue, at every refresh and in the periodic revalidation. See docs/device-health.md."""
