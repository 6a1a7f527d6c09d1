"""Operations: Prometheus metrics, health and readiness probes, request ids and JSON request
logs (docs/operations.md "Metrics", "Health checks", "Logs"). The top app below the project:
it observes every app and no app imports it."""
