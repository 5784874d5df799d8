"""A stdio MCP server that works, then crashes by itself after a random lifetime.

It shows a real loss and reconnect in the demo: each process lives between
``--min-life`` and ``--max-life`` seconds (default 20-60), then prints one line to stderr
and exits with ``--exit-code`` (default 3), whether or not a call is in flight.

    python examples/servers/flaky_server.py --min-life 5 --max-life 10
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Sequence

from mcp.server.mcpserver import MCPServer

__all__ = ["build_server", "main"]

_STARTED = time.monotonic()


def build_server(name: str = "flaky") -> MCPServer:
    server: MCPServer = MCPServer(name=name, version="1.0.0", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged (while this process lives)."""
        return text

    @server.tool()
    def uptime() -> float:
        """Seconds since this server process started; resets with every crash."""
        return round(time.monotonic() - _STARTED, 3)

    return server


def schedule_crash(lifetime: float, exit_code: int) -> None:
    """Crash from a timer thread, so the crash comes on time even if the event loop is busy."""

    def crash() -> None:
        sys.stderr.write(f"flaky: giving up after {lifetime:.1f}s, exiting with code {exit_code}\n")
        sys.stderr.flush()
        os._exit(exit_code)  # no cleanup, as in a real crash

    timer = threading.Timer(lifetime, crash)
    timer.daemon = True
    timer.start()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Demo MCP server that crashes now and then.")
    p.add_argument("--min-life", type=float, default=20.0, metavar="SECONDS")
    p.add_argument("--max-life", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--exit-code", type=int, default=3)
    p.add_argument("--name", default="flaky", help="server name reported in serverInfo")
    args = p.parse_args(argv)
    if not 0 < args.min_life <= args.max_life:
        p.error("need 0 < --min-life <= --max-life")

    lifetime = random.uniform(args.min_life, args.max_life)
    sys.stderr.write(f"flaky: serving for {lifetime:.1f}s\n")
    schedule_crash(lifetime, args.exit_code)
    build_server(args.name).run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
