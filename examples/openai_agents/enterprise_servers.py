"""Two small enterprise MCP servers for the agent example: an employee directory and a ticket desk.

    python examples/openai_agents/enterprise_servers.py directory              # stdio
    python examples/openai_agents/enterprise_servers.py tickets --transport streamable-http --port 8802

`directory`: `find_employee(name)` and `list_teams()` from a fixed table. `tickets`:
`open_ticket(title, requester_email, priority)` and `list_tickets()`, kept in memory for
the life of the process (a ticket's id is only known once the server has opened it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer

__all__ = ["EMPLOYEES", "build_directory", "build_tickets", "main"]

EMPLOYEES: tuple[dict[str, str], ...] = (
    {"name": "Ada Lovelace", "email": "ada@example.com", "team": "Platform", "manager": "grace@example.com"},
    {"name": "Grace Hopper", "email": "grace@example.com", "team": "Platform", "manager": "cto@example.com"},
    {"name": "Alan Turing", "email": "alan@example.com", "team": "Security", "manager": "cto@example.com"},
)


def build_directory() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="directory", version="1.0.0", log_level="WARNING")

    @server.tool()
    def find_employee(name: str) -> list[dict[str, str]]:
        """Employees whose name contains `name` (case-insensitive): email, team and manager."""
        wanted = name.casefold()
        return [dict(e) for e in EMPLOYEES if wanted in e["name"].casefold()]

    @server.tool()
    def list_teams() -> list[str]:
        """Every team in the company."""
        return sorted({e["team"] for e in EMPLOYEES})

    return server


def build_tickets() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="tickets", version="1.0.0", log_level="WARNING")
    opened: list[dict[str, str]] = []

    @server.tool()
    def open_ticket(
        title: str, requester_email: str, priority: Literal["low", "normal", "high"] = "normal"
    ) -> dict[str, str]:
        """Open a helpdesk ticket; returns it with its new id."""
        ticket = {
            "id": f"IT-{1000 + len(opened) + 1}",
            "title": title,
            "requester": requester_email,
            "priority": priority,
            "status": "open",
        }
        opened.append(ticket)
        return dict(ticket)

    @server.tool()
    def list_tickets() -> list[dict[str, str]]:
        """Every ticket opened since this server started."""
        return [dict(t) for t in opened]

    return server


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("role", choices=("directory", "tickets"))
    p.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8801)
    args = p.parse_args(argv)
    server = build_directory() if args.role == "directory" else build_tickets()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
