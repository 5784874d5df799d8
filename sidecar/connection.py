"""One live MCP session with one server, over the SDK's `Client`.

A `Connection` is opened, used and closed inside its supervisor's task (HTTP
transports fail as exception groups at the `async with` that opened them). Other
tasks may send requests through it while it is published, never open or close it.
Deadlines are the caller's: nothing here waits without one being set around it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    Subscription,
    SubscriptionLost,
    ToolsListChanged,
)
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_types.jsonrpc import CONNECTION_CLOSED
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS as _MODERN
from pydantic import TypeAdapter

from ._version import sidecar_version
from .config import ServerConfig
from .errors import describe_error, is_internal_error
from .events import Phase
from .http_probe import HttpProber, ProbeRedirected, probe_request
from .state import Offerings
from .streams import StreamEnd, listen_failure
from .transports import ChildProcess, GetStreamTap, http_transport, sse_transport, stdio_transport, watch_end

__all__ = ["KINDS", "CallOptions", "Connection", "Passthrough", "PhaseClock", "open_connection"]

_MAX_PAGES = 100  # a server that paginates forever cannot hang a listing
_CLIENT_INFO = types.Implementation(name="mcp-sidecar", version=sidecar_version())
_CLIENT_INFO_JSON = _CLIENT_INFO.model_dump(by_alias=True, mode="json", exclude_none=True)

# What a server can announce as changed; "resources" covers resource templates too.
KINDS = ("tools", "prompts", "resources")
_NOTIFIED: dict[type, str] = {
    types.ToolListChangedNotification: "tools",
    types.PromptListChangedNotification: "prompts",
    types.ResourceListChangedNotification: "resources",
}
_LISTENED: dict[type, str] = {
    ToolsListChanged: "tools",
    PromptsListChanged: "prompts",
    ResourcesListChanged: "resources",
}


class Connection:
    """A connected, initialized session: what the server said and offers, and a way to probe it."""

    def __init__(
        self,
        client: Client,
        child: ChildProcess | None,
        ended: anyio.Event,
        tap: GetStreamTap | None,
        http_probe: tuple[HttpProber, str, Mapping[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.child = child
        self.ended = ended  # set when the server side of the transport stopped sending
        self._tap = tap  # the standalone GET stream, on initialize-era streamable HTTP
        self.offerings = Offerings(capabilities=client.session.server_capabilities)
        self.listing_errors: dict[str, str] = {}  # kind -> why it could not be listed at connect
        self._listed_at: float | None = None  # monotonic, when the connect's lists were complete
        self._initial: Subscription | StreamEnd | None = None  # the listen stream opened at connect
        self._http_probe = http_probe  # (prober, url, configured headers): streamable HTTP only

    @property
    def tools(self) -> tuple[types.Tool, ...]:
        return self.offerings.tools

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

    @property
    def listed(self) -> tuple[str, ...]:
        """The kinds this connection lists: tools always, prompts and resources when declared."""
        capabilities = self.offerings.capabilities
        declared = {
            "prompts": capabilities is not None and capabilities.prompts is not None,
            "resources": capabilities is not None and capabilities.resources is not None,
        }
        return tuple(kind for kind in KINDS if declared.get(kind, True))

    async def list_offerings(self, clock: PhaseClock) -> None:
        """At connect: the tools (a failure fails the connect), then whatever else is declared
        (a failure there leaves that list empty and is noted in `listing_errors`)."""
        clock.start("tools/list")
        await self.refresh_tools()
        clock.end()
        for kind in self.listed:
            if kind == "tools":
                continue
            try:
                await self.refresh(kind)
            except Exception as exc:
                if is_internal_error(exc):
                    raise  # a bug of ours is not the server's failure to list
                self.listing_errors[kind] = describe_error(exc)[1]
        self._listed_at = time.monotonic()

    async def refresh(self, kind: str) -> None:
        """Fetch one kind's whole list again ("tools", "prompts", or "resources" with templates)."""
        if kind == "tools":
            await self.refresh_tools()
        elif kind == "prompts":
            await self.refresh_prompts()
        elif kind == "resources":
            await self.refresh_resources()
        else:
            raise ValueError(f"unknown kind of offering: {kind!r}")

    async def refresh_tools(self) -> tuple[types.Tool, ...]:
        """Fetch the whole tool list, past any client cache, following pagination."""
        client = self.client
        tools = await _all_pages(
            lambda cursor: client.list_tools(cursor=cursor, cache_mode="refresh"), "tools"
        )
        self.offerings = dataclasses.replace(self.offerings, tools=tools)
        return tools

    async def refresh_prompts(self) -> tuple[types.Prompt, ...]:
        client = self.client
        prompts = await _all_pages(
            lambda cursor: client.list_prompts(cursor=cursor, cache_mode="refresh"), "prompts"
        )
        self.offerings = dataclasses.replace(self.offerings, prompts=prompts)
        return prompts

    async def refresh_resources(self) -> None:
        """Resources and resource templates: one kind of change announces both."""
        client = self.client
        resources = await _all_pages(
            lambda cursor: client.list_resources(cursor=cursor, cache_mode="refresh"), "resources"
        )
        templates = await _all_pages(
            lambda cursor: client.list_resource_templates(cursor=cursor, cache_mode="refresh"),
            "resource_templates",
        )
        self.offerings = dataclasses.replace(
            self.offerings, resources=resources, resource_templates=templates
        )

    async def probe(self) -> None:
        """One cheap round trip that fits the negotiated era: `ping`, or `server/discover`
        on 2026-07-28 sessions where `ping` was removed. Over streamable HTTP it goes out
        through the shared prober (`http_probe`), a fraction of the SDK's cost per request;
        an HTTP 404 to it raises `SessionGone`."""
        if self._http_probe is not None and self._tap is not None:
            prober, url, headers = self._http_probe
            meta = {
                PROTOCOL_VERSION_META_KEY: self.protocol_version or "",
                CLIENT_INFO_META_KEY: _CLIENT_INFO_JSON,
                CLIENT_CAPABILITIES_META_KEY: {},
            }
            request = probe_request(
                self.protocol_version or "", self.legacy, self._tap.session_id, headers, meta
            )
            try:
                await prober.probe(url, request)
                return
            except ProbeRedirected:
                self._http_probe = None  # the SDK follows redirects by its own rules: its probe from now on
        session = self.client.session
        if self.legacy:
            await session.send_ping()
        else:
            await session.send_discover(self.protocol_version or "")

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> types.CallToolResult:
        return await self.client.call_tool(name, arguments, meta=meta)  # type: ignore[arg-type]

    # The event stream ----------------------------------------------------------------------

    @property
    def has_stream(self) -> bool:
        """Whether there is an event stream to hold: `subscriptions/listen` on 2026-07-28
        sessions (any transport), the standalone GET stream on initialize-era streamable HTTP.
        Elsewhere notifications share the one stream whose end `ended` already reports."""
        return not self.legacy or self._tap is not None

    async def open_listen(self, stack: AsyncExitStack, ack_timeout: float) -> None:
        """At connect, before listing (2026-07-28): the stream is open by the time the lists are
        fetched, so no change falls between the two. Its failure is kept for `hold_stream`."""
        if not self.legacy:
            self._initial = await self._listen(stack, reopening=False, ack_timeout=ack_timeout)

    async def hold_stream(
        self,
        on_change: Callable[[str], None],
        on_missed: Callable[[], None],
        *,
        reopening: bool,
        ack_timeout: float,
    ) -> StreamEnd:
        """Hold the event stream open until it ends, passing each change on, and return how it ended.

        The listen stream is opened here (the first one at connect); the GET stream is opened
        and re-opened by the SDK, and waited for. `on_missed` is called when the stream opened
        after the lists were fetched: nothing is replayed, so what changed meanwhile is unheard.
        """
        if self._tap is not None and self.legacy:
            return await self._hold_get_stream(on_missed, reopening)
        async with AsyncExitStack() as stack:
            if reopening or self._initial is None:
                opened = await self._listen(stack, reopening=reopening, ack_timeout=ack_timeout)
                if isinstance(opened, Subscription):
                    on_missed()
            else:
                opened, self._initial = self._initial, None
            if isinstance(opened, StreamEnd):
                return opened
            return await _follow(opened, on_change)

    async def _hold_get_stream(self, on_missed: Callable[[], None], reopening: bool) -> StreamEnd:
        assert self._tap is not None
        while True:
            news = await self._tap.next()
            if isinstance(news, StreamEnd):
                return news  # an end with no open before it (a second GET overlapping): still an end
            if news.kind != "opened":
                return StreamEnd("refused" if news.kind == "refused" else "failed", news.error)
            if reopening or self._listed_at is None or news.at > self._listed_at:
                on_missed()
            while not isinstance(end := await self._tap.next(), StreamEnd):
                pass  # an overlapping GET (a resumption) opened: the first end still counts
            return end

    async def _listen(
        self, stack: AsyncExitStack, *, reopening: bool, ack_timeout: float
    ) -> Subscription | StreamEnd:
        """Open `subscriptions/listen` for every kind of change, into `stack`; or how that failed."""
        listen = self.client.listen(
            tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
        )
        try:
            with anyio.fail_after(ack_timeout):
                return await stack.enter_async_context(listen)
        except MCPError as exc:
            gone = exc.code == CONNECTION_CLOSED
            kind = listen_failure(connection_gone=gone, answered=not gone, reopening=reopening)
            return StreamEnd(kind, describe_error(exc)[1])
        except TimeoutError:
            error = f"no acknowledgment of subscriptions/listen within {ack_timeout:g}s"
            return StreamEnd(listen_failure(False, False, reopening), error)
        except SubscriptionLost as exc:
            return StreamEnd(listen_failure(False, False, reopening), str(exc))

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
    ) -> dict[str, Any] | types.InputRequiredResult:
        """`tools/call` with progress passed on and 2026-07-28 input-required rounds left to the caller.

        A final result comes back as the server sent it: the SDK has checked it against the
        era's schema already, and the gateway passes it on unchanged, so parsing it into a
        model (and dumping it again) would be work for nothing. An input-required result
        comes back as its model: the gateway may have to answer it."""
        params = types.CallToolRequestParams(
            name=name,
            arguments=arguments,
            input_responses=options.input_responses,
            request_state=options.request_state,
            _meta=meta,  # type: ignore[typeddict-item]
        )
        request = types.CallToolRequest(params=params)
        raw = await self.send_request(request, _RAW_RESULT, timeout=timeout, progress=options.progress)
        if raw.get("resultType") == "input_required":
            return types.InputRequiredResult.model_validate(raw, by_name=False)
        return raw


async def _follow(subscription: Subscription, on_change: Callable[[str], None]) -> StreamEnd:
    """Pass a listen stream's events on until it ends; how it ended."""
    opened = time.monotonic()
    try:
        async for event in subscription:
            kind = _LISTENED.get(type(event))
            if kind is not None:
                on_change(kind)
    except SubscriptionLost as exc:
        cause = describe_error(exc.__cause__)[1] if exc.__cause__ is not None else str(exc)
        return StreamEnd("dropped", cause, time.monotonic() - opened)
    return StreamEnd("graceful", "the server ended the listen stream", time.monotonic() - opened)


async def _all_pages(fetch: Callable[[str | None], Awaitable[Any]], field: str) -> tuple[Any, ...]:
    """Every item of a paginated list (`field` of each page)."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await fetch(cursor)
        items.extend(getattr(page, field))
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(items)


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
    on_change: Callable[[str], None],
    on_spawn: Callable[[ChildProcess], None],
    clock: PhaseClock,
    passthrough: Passthrough | None = None,
    prober: HttpProber | None = None,
) -> AsyncIterator[Connection]:
    """Open the transport, negotiate the protocol era, list what the server offers; close it all on exit.

    The caller bounds this with a cancel scope (connect timeout, then close budget).
    `on_change(kind)` hears of every announced change ("tools", "prompts", "resources")
    that arrives as a notification (initialize era); 2026-07-28 announcements arrive on
    the listen stream (`Connection.hold_stream`). `on_spawn` hands over a stdio child as
    soon as it exists, so that a server which dies during the handshake can still be
    asked for its exit code and stderr.
    """
    spawned: list[ChildProcess] = []

    def remember(child: ChildProcess) -> None:
        spawned.append(child)
        on_spawn(child)

    ended = anyio.Event()
    tap: GetStreamTap | None = None
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
        tap = GetStreamTap()
        transport = http_transport(config.url, config.headers, config.connect_timeout, tap)
    else:
        assert config.url is not None
        transport = sse_transport(config.url, config.headers, config.connect_timeout)

    async def on_message(message: Any) -> None:
        # Notifications only signal the supervisor; it does the I/O in its own task. A
        # 2026-07-28 session gets the listen stream's events here too: those are taken
        # from the stream itself, so that each change is heard once.
        kind = _NOTIFIED.get(type(message))
        if kind is not None and client.session.protocol_version not in _MODERN:
            on_change(kind)

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
    async with client, AsyncExitStack() as streams:
        http_probe = (prober, config.url, config.headers) if prober and tap and config.url else None
        connection = Connection(client, spawned[0] if spawned else None, ended, tap, http_probe)
        clock.end("initialize" if connection.legacy else "server/discover")
        await connection.open_listen(streams, ack_timeout=config.health.timeout)
        await connection.list_offerings(clock)
        yield connection


# -- the gateway's hooks into a connection -----------------------------------------------------------

_RAW_RESULT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])  # a shallow check: a JSON object


@dataclasses.dataclass(frozen=True, slots=True)
class CallOptions:
    """How a gateway call differs from a plain one: progress goes back to its caller, and a
    2026-07-28 retry carries the caller's input responses and the server's request state."""

    progress: ProgressFnT | None = None
    input_responses: types.InputResponses | None = None
    request_state: str | None = None


class Passthrough(Protocol):
    """What the gateway answers for a server: its sampling, elicitation and roots requests (asked
    of the calling client), its log messages and its other notifications."""

    async def sampling(
        self, server: str, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData: ...

    async def elicitation(
        self, server: str, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData: ...

    async def log(self, server: str, params: types.LoggingMessageNotificationParams) -> None: ...

    async def roots(
        self, server: str, context: ClientRequestContext
    ) -> types.ListRootsResult | types.ErrorData: ...

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

    async def roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        return await passthrough.roots(server, context)

    async def message(message: Any) -> None:
        await on_message(message)
        await passthrough.notification(server, message)

    return {
        "message_handler": message,
        "sampling_callback": sampling,
        "elicitation_callback": elicitation,
        "logging_callback": log,
        "list_roots_callback": roots,
    }
