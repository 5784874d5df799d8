"""How the seed examples build their servers: the one part adapted to mcp-sidecar.

The seed constructs `MCPServerStdio(...)` / `MCPServerStreamableHttp(...)` objects; here a
server is a `ServerConfig`, run from the demo servers in examples/servers/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sidecar import ServerConfig

__all__ = ["DEMO_SERVER", "broken", "demo", "http_demo"]

DEMO_SERVER = Path(__file__).resolve().parent.parent / "servers" / "demo_server.py"


def demo(name: str) -> ServerConfig:
    """A healthy stdio server (echo, add, now, word_count)."""
    return ServerConfig(name=name, transport="stdio", command=sys.executable, args=[str(DEMO_SERVER)])


def broken(name: str) -> ServerConfig:
    """A stdio server that cannot start: its module does not exist, so the process exits at once."""
    args = ["-m", "no_such_mcp_server"]
    return ServerConfig(name=name, transport="stdio", command=sys.executable, args=args)


def http_demo(name: str, port: int) -> ServerConfig:
    """The demo server over streamable HTTP on 127.0.0.1:`port` (up or not)."""
    return ServerConfig(
        name=name, transport="streamable-http", url=f"http://127.0.0.1:{port}/mcp", connect_timeout=5
    )
