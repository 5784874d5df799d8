"""End-to-end tests: the `mcp-sidecar` command as a user runs it."""
