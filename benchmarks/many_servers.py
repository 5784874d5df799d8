"""One process serving many MCP endpoints: `/s0/mcp`, `/s1/mcp`, ... all answered by one SDK server.

For scale benchmarks: a thousand servers as a thousand processes would measure the
machine, not the sidecar. Each path is a separate endpoint to the sidecar (its own
connection and session); behind them is one MCPServer with a few tools.

    python benchmarks/many_servers.py --port 8100 [--json-response]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer


def build_app(json_response: bool) -> Any:
    server = MCPServer("many")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    inner = server.streamable_http_app(json_response=json_response, host="127.0.0.1")

    async def any_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Every /sN/mcp is the one /mcp endpoint; sessions keep the connections apart.
        if scope["type"] == "http":
            scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        await inner(scope, receive, send)

    return any_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        build_app(args.json_response),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        backlog=4096,
    )
    anyio.run(uvicorn.Server(config).serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
