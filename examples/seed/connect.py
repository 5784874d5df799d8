"""Connecting with the manager: every server at once; the ones that fail do not stop the rest.

python examples/seed/connect.py
"""

from __future__ import annotations

import asyncio

from servers import broken, demo

from sidecar import MCPServerManager


async def main() -> None:
    servers = [demo("filesystem"), demo("search"), broken("database")]
    async with MCPServerManager(servers) as manager:
        print("Active servers:", [s.name for s in manager.active_servers])
        print("Failed servers:", [s.name for s in manager.failed_servers])


if __name__ == "__main__":
    asyncio.run(main())
