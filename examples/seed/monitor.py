"""Monitoring active and failed servers: what is up, what is not, and why.

python examples/seed/monitor.py
"""

from __future__ import annotations

import asyncio

from servers import broken, demo

from sidecar import MCPServerManager


async def main() -> None:
    servers = [demo("filesystem"), demo("search"), broken("database")]
    async with MCPServerManager(servers) as manager:
        active = {s.name for s in manager.active_servers}
        print(f"{len(active)}/{len(manager.all_servers)} servers active: {sorted(active)}")

        for server in manager.failed_servers:
            print(f"FAILED {server.name}: {manager.errors[server.name]}")

        required = {"filesystem", "database"}
        missing = required - active
        if missing:
            print("Required servers missing:", sorted(missing))

        for server in manager.active_servers:  # each is a status snapshot, not only a name
            tools = ", ".join(server.tools)
            print(f"{server.name}: {server.state}, protocol {server.protocol_version}, tools: {tools}")


if __name__ == "__main__":
    asyncio.run(main())
