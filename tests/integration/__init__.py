"""Integration tests: real servers, real processes, real sockets (127.0.0.1 only)."""
