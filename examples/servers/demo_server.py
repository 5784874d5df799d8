"""A healthy demo MCP server with a few useful tools.

Over stdio: ``python examples/servers/demo_server.py``. Over streamable HTTP at
http://127.0.0.1:8765/mcp: ``python examples/servers/demo_server.py --transport streamable-http --port 8765``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from mcp.server.mcpserver import MCPServer

__all__ = ["build_server", "main"]


def build_server(name: str = "demo") -> MCPServer:
    server: MCPServer = MCPServer(
        name=name,
        version="1.0.0",
        instructions="Demo tools for mcp-sidecar: echo, add, now, word_count.",
        # INFO would log every request to stderr, which the sidecar captures.
        log_level="WARNING",
    )

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    def now() -> str:
        """The current time in UTC, ISO 8601."""
        return datetime.now(UTC).isoformat(timespec="seconds")

    @server.tool()
    def word_count(text: str) -> dict[str, int]:
        """Count the words, lines and characters of a text."""
        return {"words": len(text.split()), "lines": len(text.splitlines()), "characters": len(text)}

    return server


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Healthy demo MCP server.")
    p.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--name", default="demo", help="server name reported in serverInfo")
    args = p.parse_args(argv)

    server = build_server(args.name)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
