"""Reconnection strategies: drop what failed, work on, and reconnect once it is back.

    python examples/seed/reconnect.py

The `docs` server (streamable HTTP) is down when the manager starts; this script then
starts it, as an operator would, and retries with `reconnect(failed_only=True)`.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

from servers import DEMO_SERVER, demo, http_demo

from sidecar import MCPServerManager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def reconnect_with_backoff(manager: MCPServerManager, attempts: int = 10) -> None:
    """Retry the failed servers, waiting longer each time, until none is left or we give up."""
    delay = 0.5
    for _ in range(attempts):
        await manager.reconnect(failed_only=True)
        if not manager.failed_servers and not manager.dropped_servers:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)


async def main() -> None:
    port = free_port()
    servers = [demo("calendar"), http_demo("docs", port)]
    async with MCPServerManager(servers) as manager:
        print("Failed at start:", [s.name for s in manager.failed_servers])
        manager.drop_failed_servers()
        print("Working with:", [s.name for s in manager.active_servers])

        docs = await asyncio.create_subprocess_exec(
            *(sys.executable, str(DEMO_SERVER), "--transport", "streamable-http", "--port", str(port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await reconnect_with_backoff(manager)
            print("Active after reconnect:", [s.name for s in manager.active_servers])
            print("Failed after reconnect:", [s.name for s in manager.failed_servers])
        finally:
            docs.terminate()
            await asyncio.wait_for(docs.wait(), 10)


if __name__ == "__main__":
    asyncio.run(main())
