"""Concurrent callers of the sidecar's gateway while the chaos faults happen.

Each caller is an SDK `Client` of the gateway endpoint (two per protocol era) that calls, in
turn, a tool of a faulty server and a tool of a healthy one, the callers starting at
different places in the list so that together they cover it. Healthy servers must answer
every time; faulty ones may fail, but only as MCP says a gateway fails (an `isError` result
naming the server, or the server's own JSON-RPC error), never by a hang or by losing the
caller's session. They run in a thread of their own with their own event loop, from the
start of the faults until they have settled.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError

__all__ = ["GatewayCall", "GatewayCallers", "list_gateway_tools"]

ERAS = ("legacy", "legacy", "2026-07-28", "2026-07-28")
CALL_LIMIT = 20.0  # seconds a call may take before it counts as a hang (call_timeout is 30 s or 1 s)
_PACE = 0.1  # seconds between two calls of one caller


@dataclass(frozen=True)
class GatewayCall:
    """One call through the gateway and how it ended."""

    caller: int
    era: str
    tool: str
    outcome: str  # ok | error_result | rpc_error | hang | broken (anything else: the session failed)
    text: str
    seconds: float


Plan = Sequence[tuple[str, dict[str, Any]]]  # (exposed tool, arguments)


@dataclass
class GatewayCallers:
    """Four callers of the gateway at `url`, alternating between the tools of `faulty` and `healthy`."""

    url: str
    faulty: Plan
    healthy: Plan
    calls: list[GatewayCall] = field(default_factory=list)
    sessions_failed: list[str] = field(default_factory=list)  # a caller's session ended under it
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=anyio.run, args=(self._main,), name="chaos-gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CALL_LIMIT + 10)

    async def _main(self) -> None:
        async with anyio.create_task_group() as tg:
            for caller, era in enumerate(ERAS):
                tg.start_soon(self._caller, caller, era)

    async def _caller(self, caller: int, era: str) -> None:
        try:
            async with Client(self.url, mode=era, cache=None) as client:
                start = caller * len(self.faulty) // len(ERAS)  # together, the callers cover the list
                turn = 0
                while not self._stop.is_set():
                    for tool, arguments in (
                        self.faulty[(start + turn) % len(self.faulty)],
                        self.healthy[turn % len(self.healthy)],
                    ):
                        self.calls.append(await self._call(client, caller, era, tool, arguments))
                        await anyio.sleep(_PACE)
                    turn += 1
        except Exception as exc:  # the gateway dropped this caller's session, or never served it
            self.sessions_failed.append(f"caller {caller} ({era}): {type(exc).__name__}: {exc}")

    @staticmethod
    async def _call(
        client: Client, caller: int, era: str, tool: str, arguments: dict[str, Any]
    ) -> GatewayCall:
        started = anyio.current_time()
        outcome, text = "ok", ""
        try:
            with anyio.fail_after(CALL_LIMIT):
                result = await client.call_tool(tool, arguments)
            text = " ".join(getattr(block, "text", "") for block in result.content)
            outcome = "error_result" if result.is_error else "ok"
        except TimeoutError:
            outcome, text = "hang", f"no answer within {CALL_LIMIT:g}s"
        except MCPError as exc:
            outcome, text = "rpc_error", f"{exc.code}: {exc.message}"
        except Exception as exc:
            outcome, text = "broken", f"{type(exc).__name__}: {exc}"
        return GatewayCall(caller, era, tool, outcome, text[:300], anyio.current_time() - started)


def list_gateway_tools(url: str) -> list[str]:
    """The tools the gateway offers now, as a new client (initialize era) sees them."""

    async def main() -> list[str]:
        async with Client(url, mode="legacy", cache=None) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(main)
