"""One live MCP session with one server, over the SDK's `Client`.

A `Connection` is opened, used and closed inside its supervisor's task (HTTP
transports fail as exception groups at the `async with` that opened them). Other
tasks may send requests through it while it is published, never open or close it.
Deadlines are the caller's: nothing here waits without one being set around it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from ._version import sidecar_version
from .config import ServerConfig
from .events import Phase
from .transports import ChildProcess, http_transport, sse_transport, stdio_transport, watch_end

__all__ = ["Connection", "PhaseClock", "open_connection"]

_MAX_TOOL_PAGES = 100  # a server that paginates forever cannot hang a listing
_CLIENT_INFO = types.Implementation(name="mcp-sidecar", version=sidecar_version())


class Connection:
    """A connected, initialized session: what the server said, its tools, and a way to probe it."""

    def __init__(self, client: Client, child: ChildProcess | None, ended: anyio.Event) -> None:
        self.client = client
        self.child = child
        self.ended = ended  # set when the server side of the transport stopped sending
        self.tools: tuple[types.Tool, ...] = ()

    @property
    def protocol_version(self) -> str | None:
        return self.client.session.protocol_version

    @property
    def legacy(self) -> bool:
        """True for the initialize-handshake era (up to 2025-11-25), where `ping` exists."""
        return self.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS

    @property
    def server_info(self) -> types.Implementation | None:
        return self.client.server_info

    async def refresh_tools(self) -> tuple[types.Tool, ...]:
        """Fetch the whole tool list, following pagination."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await self.client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        self.tools = tuple(tools)
        return self.tools

    async def probe(self) -> None:
        """One cheap round trip that fits the negotiated era: `ping`, or `server/discover`
        on 2026-07-28 sessions where `ping` was removed."""
        session = self.client.session
        if self.legacy:
            await session.send_ping()
        else:
            await session.send_discover(self.protocol_version or "")

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> types.CallToolResult:
        return await self.client.call_tool(name, arguments, meta=meta)  # type: ignore[arg-type]


class PhaseClock:
    """Times the client calls of one connect attempt, for traces: which ran, and which failed."""

    def __init__(self) -> None:
        self._done: list[Phase] = []
        self._running: tuple[str, float] | None = None

    def start(self, name: str) -> None:
        self._running = (name, time.time())

    def end(self, name: str | None = None) -> None:
        """End the running call; `name` corrects it once the era is known."""
        if self._running is not None:
            self._done.append(Phase(name or self._running[0], self._running[1], time.time()))
            self._running = None

    def phases(self, error_type: str | None = None) -> tuple[Phase, ...]:
        """The calls so far; with `error_type`, the running one too, as the one that failed."""
        if error_type is None or self._running is None:
            return tuple(self._done)
        name, started = self._running
        return (*self._done, Phase(name, started, time.time(), error_type))


@asynccontextmanager
async def open_connection(
    config: ServerConfig,
    *,
    close_timeout: float,
    on_tools_changed: Callable[[], None],
    on_spawn: Callable[[ChildProcess], None],
    clock: PhaseClock,
) -> AsyncIterator[Connection]:
    """Open the transport, negotiate the protocol era, list tools; close it all on exit.

    The caller bounds this with a cancel scope (connect timeout, then close budget).
    `on_spawn` hands over a stdio child as soon as it exists, so that a server which
    dies during the handshake can still be asked for its exit code and stderr.
    """
    spawned: list[ChildProcess] = []

    def remember(child: ChildProcess) -> None:
        spawned.append(child)
        on_spawn(child)

    ended = anyio.Event()
    if config.transport == "stdio":
        assert config.command is not None
        transport: Any = stdio_transport(
            config.command,
            config.args,
            env=config.env,
            cwd=config.cwd,
            close_timeout=close_timeout,
            on_spawn=remember,
        )
    elif config.transport == "streamable-http":
        assert config.url is not None
        transport = http_transport(config.url, config.headers, config.connect_timeout)
    else:
        assert config.url is not None
        transport = sse_transport(config.url, config.headers, config.connect_timeout)

    async def on_message(message: Any) -> None:
        # Notifications only signal the supervisor; it does the I/O in its own task.
        if isinstance(message, types.ToolListChangedNotification):
            on_tools_changed()

    client = Client(
        watch_end(transport, ended),
        mode=config.protocol,
        cache=None,
        client_info=_CLIENT_INFO,
        message_handler=on_message,
    )
    # The handshake's name depends on the era, known only once it is done.
    clock.start("server/discover" if config.protocol == "2026-07-28" else "initialize")
    async with client:
        connection = Connection(client, spawned[0] if spawned else None, ended)
        clock.end("initialize" if connection.legacy else "server/discover")
        clock.start("tools/list")
        await connection.refresh_tools()
        clock.end()
        yield connection
