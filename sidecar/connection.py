"""One live MCP session with one server, over the SDK's `Client`.

A `Connection` is opened, used and closed inside its supervisor's task (HTTP
transports fail as exception groups at the `async with` that opened them). Other
tasks may send requests through it while it is published, never open or close it.
Deadlines are the caller's: nothing here waits without one being set around it.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from .config import ServerConfig
from .events import Phase
from .transports import ChildProcess, http_transport, sse_transport, stdio_transport, watch_end

__all__ = ["CallOptions", "Connection", "Passthrough", "PhaseClock", "open_connection"]

_MAX_TOOL_PAGES = 100  # a server that paginates forever cannot hang a listing
_CLIENT_INFO = types.Implementation(name="mcp-sidecar", version=importlib.metadata.version("mcp-sidecar"))


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

    # -- for the gateway: requests passed through as they are -----------------------------

    async def send_request(
        self,
        request: Any,
        result_type: Any,
        *,
        timeout: float | None = None,
        progress: ProgressFnT | None = None,
    ) -> Any:
        """One request, its result as the server sent it (no output-schema check, no
        input-required driving: the gateway's caller decides). `timeout` is the SDK's, so
        the server gets `notifications/cancelled` when it passes."""
        return await self.client.session.send_request(
            request, result_type, request_read_timeout_seconds=timeout, progress_callback=progress
        )

    async def call_tool_with(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        meta: dict[str, Any] | None,
        options: CallOptions,
        timeout: float | None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """`tools/call` with progress passed on and 2026-07-28 input-required rounds left to the caller."""
        params = types.CallToolRequestParams(
            name=name,
            arguments=arguments,
            input_responses=options.input_responses,
            request_state=options.request_state,
            _meta=meta,  # type: ignore[typeddict-item]
        )
        request = types.CallToolRequest(params=params)
        return await self.send_request(request, _CALL_RESULT, timeout=timeout, progress=options.progress)


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
    passthrough: Passthrough | None = None,
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

    # Gateway passthrough: what the server asks of its caller goes to the gateway (which also
    # sees every notification); without one the client declares no sampling or elicitation.
    handlers: dict[str, Any] = {"message_handler": on_message}
    if passthrough is not None:
        handlers = _passthrough_handlers(passthrough, config.name, on_message)
    client = Client(
        watch_end(transport, ended),
        mode=config.protocol,
        cache=None,
        client_info=_CLIENT_INFO,
        **handlers,
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


# -- the gateway's hooks into a connection -----------------------------------------------------------

_CALL_RESULT: TypeAdapter[types.CallToolResult | types.InputRequiredResult] = TypeAdapter(
    types.CallToolResult | types.InputRequiredResult
)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How a gateway call differs from a plain one: progress goes back to its caller, and a
    2026-07-28 retry carries the caller's input responses and the server's request state."""

    progress: ProgressFnT | None = None
    input_responses: types.InputResponses | None = None
    request_state: str | None = None


class Passthrough(Protocol):
    """What the gateway answers for a server: its sampling and elicitation requests (asked of
    the calling client), its log messages and its other notifications."""

    async def sampling(
        self, server: str, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData: ...

    async def elicitation(
        self, server: str, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData: ...

    async def log(self, server: str, params: types.LoggingMessageNotificationParams) -> None: ...

    async def notification(self, server: str, message: Any) -> None: ...


def _passthrough_handlers(
    passthrough: Passthrough, server: str, on_message: Callable[[Any], Any]
) -> dict[str, Any]:
    """The `Client` callbacks that hand a server's requests and notifications to `passthrough`."""

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        return await passthrough.sampling(server, context, params)

    async def elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await passthrough.elicitation(server, context, params)

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        await passthrough.log(server, params)

    async def message(message: Any) -> None:
        await on_message(message)
        await passthrough.notification(server, message)

    return {
        "message_handler": message,
        "sampling_callback": sampling,
        "elicitation_callback": elicitation,
        "logging_callback": log,
    }
