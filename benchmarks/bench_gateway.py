"""The gateway's cost per call, and how fast a dead server leaves every client's list.

    python benchmarks/bench_gateway.py gateway_overhead
    python benchmarks/bench_gateway.py gateway_failover

The sidecar's pieces run in this process, wired as `mcp-sidecar run` wires them (manager,
gateway, its HTTP endpoint on a free port); the clients are the mcp SDK's `Client`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BEHAVING, Row, healthy_server, ms, result_line, row, say, summary

from sidecar.app import build_gateway, serve_gateway
from sidecar.config import GatewayConfig, ServerConfig, SidecarConfig, SidecarSettings
from sidecar.manager import MCPServerManager

CALLS = 300
KILLS = 10


def _config(*servers: ServerConfig) -> SidecarConfig:
    settings = SidecarSettings(listen="127.0.0.1:0", gateway=GatewayConfig(listen="127.0.0.1:0"))
    return SidecarConfig(sidecar=settings, servers=servers)


async def _calls(call: Any, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


async def _overhead() -> list[Row]:
    from mcp import Client

    server = ServerConfig(name="b", transport="stdio", command=sys.executable, args=(str(BEHAVING),))
    config = _config(server)
    manager = MCPServerManager(config)
    gateway = build_gateway(manager, config)
    results: dict[str, list[float]] = {}
    async with serve_gateway(gateway, config) as port, manager:
        url = f"http://127.0.0.1:{port}/mcp"

        async def direct(i: int) -> None:
            await manager.call_tool("b", "add", {"a": i, "b": 1})

        await _calls(direct, 20)  # warm up
        results["direct"] = await _calls(direct, CALLS)
        for mode in ("legacy", "2026-07-28"):
            async with Client(url, mode=mode) as client:
                await client.list_tools()

                async def through(i: int, client: Any = client) -> None:
                    await client.call_tool("b__add", {"a": i, "b": 1})

                await _calls(through, 20)
                results[mode] = await _calls(through, CALLS)
    base = summary(results["direct"])["median"]
    rows = []
    for mode in ("legacy", "2026-07-28"):
        s = summary(results[mode])
        say(f"  {mode}: median {ms(s['median'])}, p90 {ms(s['p90'])}; direct {ms(base)}")
        rows.append(
            row(
                "gateway_overhead",
                f"{CALLS} sequential tools/call through the gateway, {mode} client, stdio SDK server",
                "(none: measured)",
                f"median {ms(s['median'])} (direct manager.call_tool {ms(base)}: +{ms(s['median'] - base)}), "
                f"p90 {ms(s['p90'])}",
                None,
                through=s,
                direct=summary(results["direct"]),
            )
        )
    return rows


async def _failover() -> list[Row]:
    """A stdio server SIGKILLed while two clients (one per era) listen: time until each is told."""
    from mcp import Client
    from mcp.shared.subscriptions import ToolsListChanged
    from mcp_types import ToolListChangedNotification

    command, args = healthy_server("everything", "e")
    server = ServerConfig.model_validate(
        {
            "name": "e",
            "transport": "stdio",
            "command": command,
            "args": args,
            "reconnect": {"initial_backoff": 0.05, "max_backoff": 0.05},
        }
    )
    config = _config(server)
    manager = MCPServerManager(config)
    gateway = build_gateway(manager, config)
    legacy_told: list[float] = []
    modern_told: list[float] = []
    gone_from_list: list[float] = []
    async with serve_gateway(gateway, config) as port, manager:
        url = f"http://127.0.0.1:{port}/mcp"
        heard_at: dict[str, float | None] = {"legacy": None, "modern": None}

        async def on_message(message: Any) -> None:
            if isinstance(message, ToolListChangedNotification) and heard_at["legacy"] is None:
                heard_at["legacy"] = time.perf_counter()

        async with (
            Client(url, mode="legacy", message_handler=on_message) as legacy,
            Client(url, mode="2026-07-28") as modern,
            anyio.create_task_group() as tg,
        ):

            async def listen(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
                async with modern.listen(tools_list_changed=True) as subscription:
                    task_status.started()
                    async for event in subscription:
                        if isinstance(event, ToolsListChanged) and heard_at["modern"] is None:
                            heard_at["modern"] = time.perf_counter()

            await tg.start(listen)
            for _ in range(KILLS):
                with anyio.fail_after(30):
                    while not manager.status("e").active:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.3)  # let the notifications of the comeback pass
                heard_at.update(legacy=None, modern=None)
                pid = manager.status("e").pid
                assert pid is not None
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(10):
                    while any(t.name.startswith("e__") for t in (await legacy.list_tools()).tools):
                        pass
                gone_from_list.append(time.perf_counter() - killed)
                with anyio.fail_after(10):
                    while heard_at["legacy"] is None or heard_at["modern"] is None:
                        await anyio.sleep(0.001)
                legacy_told.append(heard_at["legacy"] - killed)  # type: ignore[operator]
                modern_told.append(heard_at["modern"] - killed)  # type: ignore[operator]
            tg.cancel_scope.cancel()
    rows = []
    for what, samples in (
        ("gone from tools/list", gone_from_list),
        ("legacy client told (tools/list_changed)", legacy_told),
        ("2026-07-28 client told (listen event)", modern_told),
    ):
        s = summary(samples)
        say(f"  {what}: median {ms(s['median'])}, max {ms(s['max'])}")
        rows.append(
            row(
                "gateway_failover",
                f"npm server-everything SIGKILLed ({KILLS} runs): {what}",
                "<= 250 ms (median)",
                f"median {ms(s['median'])}, p90 {ms(s['p90'])}, max {ms(s['max'])}",
                s["median"] <= 0.25,
                samples=s,
            )
        )
    return rows


BENCHMARKS = {"gateway_overhead": _overhead, "gateway_failover": _failover}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BENCHMARKS:
        print(f"usage: {Path(__file__).name} {{{','.join(BENCHMARKS)}}}", file=sys.stderr)
        return 2
    print(result_line({"rows": anyio.run(BENCHMARKS[argv[0]])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
