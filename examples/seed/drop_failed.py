"""Dropping failed servers: stop retrying them, so the agent works with the healthy ones.

python examples/seed/drop_failed.py
"""

from __future__ import annotations

import asyncio

from servers import broken, demo

from sidecar import MCPServerManager


async def main() -> None:
    servers = [demo("filesystem"), broken("database"), broken("email")]
    async with MCPServerManager(servers) as manager:
        print("Failed before:", [s.name for s in manager.failed_servers])

        manager.drop_failed_servers()  # takes effect at once; no await needed

        print("Failed after:", [s.name for s in manager.failed_servers])
        print("Dropped:", [s.name for s in manager.dropped_servers])
        print("Serving:", [s.name for s in manager.active_servers])
        print("Errors kept for:", sorted(manager.errors))


if __name__ == "__main__":
    asyncio.run(main())
