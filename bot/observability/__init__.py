"""Running Hearth as a service: Prometheus metrics, the health check, the HTTP server for both, log context."""
