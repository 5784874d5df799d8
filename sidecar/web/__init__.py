"""The ops HTTP server: health endpoints, metrics, status page, admin."""
