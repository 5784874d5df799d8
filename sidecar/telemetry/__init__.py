"""Views of the lifecycle: Prometheus metrics, OTLP traces, log lines."""
