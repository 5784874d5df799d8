"""The gateway: one MCP server that offers what the active servers offer, and routes back to them.

A view of the manager plus one way back in: the lists come from the catalog, built from
the snapshot (never by asking a server while a client waits); calls go through
`manager.call_tool` (metrics, span, deadline) and `manager.request`. Transport-free:
`web.gateway_http` serves `Gateway.server` over streamable HTTP.

Change: after any lifecycle event the catalog is rebuilt and compared with what clients
were last told; a real difference becomes `notifications/*/list_changed` on every
initialize-era session and an event on every 2026-07-28 `subscriptions/listen` stream,
once per burst. Lists are always computed from the snapshot of the moment, so a server
that leaves `active` is gone from the next list even before the notification goes out.

What a server asks of its caller during a call (sampling, elicitation) and tells it (logs,
resource updates) goes back through `relay.Relay`.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.connection import Connection as ClientConnection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter, ValidationError

from .catalog import (
    Catalog,
    ListKind,
    Route,
    build_catalog,
    changed_kinds,
    expose_uri,
    server_entry,
)
from .config import GatewayConfig
from .connection import CallOptions
from .errors import ServerUnavailable, ToolCallError, describe_error, is_tool_error, jsonrpc_error_type
from .events import HealthCheckFailed, HealthCheckPassed, Subscription, ToolCalled
from .manager import MCPServerManager
from .relay import LOG_LEVEL_KEY, LOG_LEVELS, NOTIFY_TIMEOUT, Relay, client_of, is_modern
from .resource_watch import ResourceWatches

if TYPE_CHECKING:
    from .telemetry.metrics import SidecarMetrics

__all__ = ["Gateway"]

log = logging.getLogger("sidecar.gateway")

_QUIET = 0.02  # a burst of lifecycle events is over after this long without one
_MAX_DELAY = 0.2  # and a notification never waits longer than this after the first change
_INPUT_ROUNDS = 8  # 2026-07-28 input-required rounds relayed for one initialize-era call
_RETIRED_MAX = 10_000  # names once exposed, remembered to say why a call to one cannot go through
_RESOURCE_NOT_FOUND = -32002  # the MCP spec's code for resources/read of an unknown URI
_RESERVED_META = "io.modelcontextprotocol/"  # per-hop envelope keys: never forwarded (trap 6)
_HOP_META = frozenset({"progressToken", "progress_token", "traceparent", "tracestate"})
_QUIET_EVENTS = (HealthCheckPassed, HealthCheckFailed, ToolCalled)  # never change what is exposed
_SINCE_KEY = "mcp_sidecar.since"  # in a client connection's `state`: when its session began
_LIST_CHANGED = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
_PROMPT_RESULT: TypeAdapter[types.GetPromptResult | types.InputRequiredResult] = TypeAdapter(
    types.GetPromptResult | types.InputRequiredResult
)
_READ_RESULT: TypeAdapter[types.ReadResourceResult | types.InputRequiredResult] = TypeAdapter(
    types.ReadResourceResult | types.InputRequiredResult
)
_EVENTS: dict[ListKind, Any] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


class _GatewayServer(Server[Any]):
    """The SDK server, announcing `listChanged` to initialize-era clients (trap 1: it says
    false unless asked)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or _LIST_CHANGED, experimental_capabilities, extensions
        )


def _forwarded_meta(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A caller's `_meta` minus what belongs to its hop: the reserved envelope keys (an upstream
    would take them for its own), its progress token and trace context (the client adds its own)."""
    if not meta:
        return None
    kept = {k: v for k, v in meta.items() if not k.startswith(_RESERVED_META) and k not in _HOP_META}
    return kept or None


def _returned(result: Any) -> Any:
    """An upstream result minus the reserved keys of its `_meta` (its serverInfo stamp is not ours);
    a model, or a JSON object as the server sent it (a tool call's final result)."""
    raw = isinstance(result, dict)
    meta = result.get("_meta") if raw else getattr(result, "meta", None)
    if isinstance(meta, dict) and any(key.startswith(_RESERVED_META) for key in meta):
        kept = {k: v for k, v in meta.items() if not k.startswith(_RESERVED_META)}
        if raw:
            return {**result, "_meta": kept} if kept else {k: v for k, v in result.items() if k != "_meta"}
        return result.model_copy(update={"meta": kept or None})
    return result


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


class Gateway:
    """The MCP server the agent connects to, over the manager's servers."""

    def __init__(
        self, manager: MCPServerManager, config: GatewayConfig, metrics: SidecarMetrics | None = None
    ) -> None:
        self._manager = manager
        self._config = config
        self._metrics = metrics  # where the gateway's side of the MCP convention metrics goes
        self._inputs: list[tuple[Any, ...]] = []
        self._catalog = Catalog()
        self._announced = Catalog()  # what clients were last told about
        self._retired: dict[str, Route] = {}  # tool and prompt names once exposed
        self._reported: frozenset[Any] = frozenset()  # collisions already logged
        self._clients: set[ClientConnection] = set()  # initialize-era sessions, open now
        self._listeners = 0  # 2026-07-28 listen streams, open now
        self.list_changed_sent = 0
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        self._task_group: TaskGroup | None = None
        self._relay = Relay(lambda server: manager.config(server).call_timeout, lambda: self._clients)
        self._watches = ResourceWatches(  # resource subscriptions on 2026-07-28 servers
            lambda server, uri: manager.listen_resources(server, [uri]), self._modern, self._relay.updated
        )
        # Initialize-era servers with subscriptions: the session they were made on (its `since`).
        self._subscribed_on: dict[str, float] = {}
        # 2026-07-28 clients' resource subscriptions: one subscriber in the relay for all of them,
        # and how many listen streams name each (server, URI).
        self._bus_subscriber = _BusSubscriber(self._bus)
        self._listened: Counter[tuple[str, str]] = Counter()
        self.server = self._build_server()
        manager.set_passthrough(self._relay)  # servers connect from now on with the way back

    def _build_server(self) -> Server[Any]:
        with warnings.catch_warnings():  # logging/setLevel is deprecated in 2026-07-28, alive before
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            server = _GatewayServer(
                "mcp-sidecar",
                version=version("mcp-sidecar"),
                get_tool_input_schema=self._input_schema,  # trap 3: else every call lists every tool
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_resource_templates,
                on_read_resource=self._read_resource,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_subscriptions_listen=self._subscriptions_listen,
                on_completion=self._complete,
                on_set_logging_level=self._set_logging_level,
            )
        server.middleware.insert(0, self._middleware)  # outermost: before the SDK's span is made
        return server

    # -- what is exposed ------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """The catalog of this moment's snapshot (rebuilt only when an input changed)."""
        manager = self._manager
        # Offerings are replaced, never mutated, when they change: compared by identity.
        inputs = [
            (status.name, status.active, status.offerings, manager.config(status.name))
            for status in manager.statuses()
        ]
        if len(inputs) != len(self._inputs) or any(
            a[:2] != b[:2] or a[2] is not b[2] or a[3] is not b[3]
            for a, b in zip(inputs, self._inputs, strict=True)
        ):
            self._inputs = inputs
            entries = [
                server_entry(config, self._config, active, offerings)
                for _, active, offerings, config in inputs
            ]
            self._catalog = build_catalog(entries, self._config.max_name_length)
            self._remember(self._catalog)
        return self._catalog

    def _remember(self, catalog: Catalog) -> None:
        for name, (_, route) in (*catalog.tools.items(), *catalog.prompts.items()):
            self._retired[name] = route
        while len(self._retired) > _RETIRED_MAX:
            del self._retired[next(iter(self._retired))]

    def report(self) -> dict[str, Any]:
        """What `/health/mcp` and the status page show of the gateway."""
        catalog = self.catalog()
        counts = catalog.exposed_counts()
        names: dict[str, list[str]] = {name: [] for name in counts}
        for exposed, (_, route) in catalog.tools.items():
            names[route.server].append(exposed)
        return {
            "listen": self._config.listen,
            "path": self._config.path,
            "sessions": self.sessions(),
            "list_changed_sent": self.list_changed_sent,
            "servers": {name: {**count, "tool_names": names[name]} for name, count in counts.items()},
            "collisions": [dataclasses.asdict(collision) for collision in catalog.collisions],
        }

    def sessions(self) -> dict[str, int]:
        """Clients connected now, by era: initialize-era sessions, and 2026-07-28 listen streams
        (that era has no sessions; a listening client is one that hears about changes)."""
        return {"legacy": len(self._clients), "2026-07-28": self._listeners}

    # -- change --------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the manager's events and tell every client what changed, until cancelled
        (or the manager's bus ends)."""
        with self._manager.subscribe(max_buffer=10_000) as subscription:
            try:
                async with anyio.create_task_group() as tg:
                    self._task_group = tg
                    self._announced = self.catalog()
                    task_status.started()
                    await self._follow(subscription)
                    tg.cancel_scope.cancel()
            finally:
                self._task_group = None  # closed: later subscriptions are refused, not started on it

    async def _follow(self, subscription: Subscription) -> None:
        ended = False
        while not ended:
            try:
                event = await subscription.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            if isinstance(event, _QUIET_EVENTS):
                continue
            ended = await _settle(subscription)
            try:
                self._watches.notice_change()
                self._subscribe_again_where_restarted()
                await self.announce()
            except Exception:  # a bug here must cost the notification, never the sidecar
                log.exception("gateway: announcing a change failed")

    async def announce(self) -> frozenset[ListKind]:
        """Compare the catalog with what clients were told; tell them what changed."""
        catalog = self.catalog()
        kinds = changed_kinds(self._announced, catalog)
        self._announced = catalog
        self._log_collisions(catalog)
        if kinds:
            await self._notify(kinds)
        return kinds

    def _log_collisions(self, catalog: Catalog) -> None:
        current = frozenset(catalog.collisions)
        for collision in catalog.collisions:
            if collision not in self._reported:
                log.warning(
                    "gateway name collision: %s %r of server %r is not exposed; server %r has that name",
                    collision.kind,
                    collision.name,
                    collision.loser,
                    collision.winner,
                )
        self._reported = current

    async def _notify(self, kinds: frozenset[ListKind]) -> None:
        async def tell(client: ClientConnection) -> None:
            with anyio.move_on_after(NOTIFY_TIMEOUT):
                for kind in sorted(kinds):
                    await client.notify(f"notifications/{kind}/list_changed", None)  # never raises
                    self.list_changed_sent += 1

        async with anyio.create_task_group() as tg:
            for client in tuple(self._clients):
                tg.start_soon(tell, client)
        for kind in sorted(kinds):
            self.list_changed_sent += self._listeners
            await self._bus.publish(_EVENTS[kind])

    async def close(self) -> None:
        """End the listen streams gracefully (the HTTP side ends the sessions)."""
        self._listen.close()
        await anyio.lowlevel.checkpoint()

    # -- sessions and trace context ------------------------------------------------------------

    async def _middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "notifications/initialized":
            result = await call_next(ctx)
            self._track(client_of(ctx.session))
            return result
        request = ctx.request
        if (
            request is not None
            and ctx.request_id is not None
            and not (ctx.meta and "traceparent" in ctx.meta)
        ):
            # Trap 8: the SDK reads the caller's trace only from `_meta`; a W3C header counts too.
            headers = getattr(request, "headers", {})
            carried = {key: headers[key] for key in ("traceparent", "tracestate") if key in headers}
            if carried:
                ctx = dataclasses.replace(ctx, meta={**(ctx.meta or {}), **carried})  # type: ignore[typeddict-item]
        if self._metrics is None or ctx.request_id is None or ctx.method == "subscriptions/listen":
            return await call_next(ctx)  # a listen stream is a subscription, not an operation
        return await self._measured(ctx, call_next, self._metrics)

    async def _measured(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, metrics: SidecarMetrics
    ) -> HandlerResult:
        """Answer the request, recording it as `mcp.server.operation.duration`."""
        started = anyio.current_time()
        error_type: str | None = None
        try:
            result = await call_next(ctx)
            if ctx.method == "tools/call" and is_tool_error(result):
                error_type = "tool_error"
            return result
        except MCPError as exc:
            error_type = jsonrpc_error_type(exc.error.code)  # a server's own codes: bounded
            raise
        except ValidationError:
            error_type = str(types.INVALID_PARAMS)  # what the SDK answers for malformed params
            raise
        except Exception as exc:
            error_type = describe_error(exc)[0]
            raise
        except BaseException:
            error_type = "cancelled"
            raise
        finally:
            name = (ctx.params or {}).get("name") if ctx.method == "tools/call" else None
            # Bounded: a name exposed now (the catalog the handler routed by; rebuilding it here
            # would cost a pass over every server's status once more per call).
            tool = name if isinstance(name, str) and name in self._catalog.tools else None
            metrics.record_server_operation(
                ctx.method,
                anyio.current_time() - started,
                error_type=error_type,
                tool=tool,
                protocol_version=ctx.protocol_version,
            )

    def _track(self, client: ClientConnection) -> None:
        if client in self._clients:
            return
        self._clients.add(client)
        client.state[_SINCE_KEY] = anyio.current_time()
        # Only the connection's exit stack says when a session ends (trap 2).
        client.exit_stack.callback(self._forget, client)

    def _forget(self, client: ClientConnection) -> None:
        self._clients.discard(client)
        if self._metrics is not None:
            lasted = anyio.current_time() - client.state.get(_SINCE_KEY, anyio.current_time())
            self._metrics.record_server_session(lasted, client.protocol_version)
        for key in self._relay.forget(client):
            if self._task_group is not None:
                self._task_group.start_soon(self._upstream_unsubscribe, *key)

    # -- tools -----------------------------------------------------------------------------------

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self.catalog().tools.get(name)
        return None if entry is None else entry[0].input_schema

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.catalog().list_tools())

    def _unroutable(self, kind: str, name: str) -> str | None:
        """Why `name`, once exposed, cannot be used now (its server is not active), or None."""
        route = self._retired.get(name)
        if route is None:
            return None
        try:
            status = self._manager.status(route.server)
        except ServerUnavailable:
            return f"{kind} {name!r}: server {route.server!r} is no longer configured"
        if status.active:
            return None
        reason = status.state.value + (f": {status.last_error}" if status.last_error else "")
        return f"{kind} {name!r} is not available: server {route.server!r} is {reason}"

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
        """Route a call; its final result passes through as the server sent it (the SDK checks it
        against the caller's era on the way out)."""
        name = params.name
        route = self.catalog().route_tool(name)
        if route is None:
            why = self._unroutable("tool", name)
            if why is not None:
                return _error_result(why)
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        meta = self._log_opt_in(ctx, route.server, _forwarded_meta(ctx.meta))

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            options = CallOptions(
                progress=self._progress(ctx), input_responses=responses, request_state=state
            )
            return await self._manager.call_tool(
                route.server, route.name, params.arguments, meta=meta, options=options
            )

        try:
            async with self._relay.in_call(ctx, route.server):
                result = _returned(
                    await self._drive(ctx, route.server, send, params.input_responses, params.request_state)
                )
        except ServerUnavailable as exc:
            return _error_result(f"tool {name!r} is not available: {exc}")
        except ToolCallError as exc:
            return _error_result(f"tool {name!r} failed on server {route.server!r}: {exc}")
        if isinstance(result, dict) and "resultType" not in result and is_modern(ctx):
            # An initialize-era server's result, to a 2026-07-28 caller: absent means complete.
            result = {**result, "resultType": "complete"}
        return result

    def _log_opt_in(
        self, ctx: ServerRequestContext[Any, Any], server: str, meta: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """`meta` with the gateway's own per-request log opt-in for a 2026-07-28 server (that era
        logs only to requests that ask): at the level the caller asked for, in its request's
        `_meta` (2026-07-28) or with `logging/setLevel` (initialize era); none if it asked nothing."""
        if is_modern(ctx):
            level = (ctx.meta or {}).get(types.LOG_LEVEL_META_KEY)
        else:
            level = client_of(ctx.session).state.get(LOG_LEVEL_KEY)
        if level not in LOG_LEVELS or not self._modern(server):
            return meta
        return {**(meta or {}), types.LOG_LEVEL_META_KEY: level}

    def _progress(self, ctx: ServerRequestContext[Any, Any]) -> Callable[..., Awaitable[None]] | None:
        """Pass a server's progress for this call on to its caller, if the caller asked for it."""
        if not ctx.meta or ("progressToken" not in ctx.meta and "progress_token" not in ctx.meta):
            return None

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            with suppress(Exception), anyio.move_on_after(NOTIFY_TIMEOUT):
                await ctx.session.report_progress(progress, total, message)

        return progress

    async def _drive(
        self,
        ctx: ServerRequestContext[Any, Any],
        server: str,
        send: Callable[[types.InputResponses | None, str | None], Awaitable[Any]],
        responses: types.InputResponses | None,
        state: str | None,
    ) -> Any:
        """Send, and relay 2026-07-28 input-required rounds: back to a 2026-07-28 caller as they
        are; asked of an initialize-era caller here (its sampling and elicitation), then resent."""
        result = await send(responses, state)
        for _ in range(_INPUT_ROUNDS):
            if not isinstance(result, types.InputRequiredResult) or is_modern(ctx):
                return result
            answers: dict[str, Any] = {}
            for key, request in (result.input_requests or {}).items():
                answers[key] = await self._relay.ask(
                    server, ctx.session, ctx.request_id, client_of(ctx.session), request
                )
            result = await send(answers, result.request_state)
        if isinstance(result, types.InputRequiredResult):
            raise MCPError(
                types.INTERNAL_ERROR, f"the server still needed input after {_INPUT_ROUNDS} rounds"
            )
        return result

    # -- prompts -------------------------------------------------------------------------------

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=self.catalog().list_prompts())

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        route = self.catalog().route_prompt(params.name)
        if route is None:
            raise MCPError(
                types.INVALID_PARAMS,
                self._unroutable("prompt", params.name) or f"Unknown prompt: {params.name}",
            )
        meta = self._log_opt_in(ctx, route.server, _forwarded_meta(ctx.meta))

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            request = types.GetPromptRequest(
                params=types.GetPromptRequestParams(
                    name=route.name,
                    arguments=params.arguments,
                    input_responses=responses,
                    request_state=state,
                    _meta=meta,
                )
            )
            return await self._request(route.server, request, _PROMPT_RESULT)

        async with self._relay.in_call(ctx, route.server):
            return _returned(
                await self._drive(ctx, route.server, send, params.input_responses, params.request_state)
            )

    async def _request(self, server: str, request: Any, result_type: Any) -> Any:
        """A request to one server; its failures as the JSON-RPC errors a client understands."""
        try:
            return await self._manager.request(server, request, result_type)
        except (ServerUnavailable, ToolCallError) as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

    # -- resources -----------------------------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=self.catalog().list_resources())

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=self.catalog().list_resource_templates())

    def _route_uri(self, uri: str) -> tuple[Route, str]:
        """The owner of `uri` and the prefix its URIs are shown with; unknown: RESOURCE_NOT_FOUND."""
        catalog = self.catalog()
        route = catalog.route_resource(uri)
        if route is None:
            raise MCPError(_RESOURCE_NOT_FOUND, f"Resource not found: {uri}", data={"uri": uri})
        owner = catalog.server(route.server)
        assert owner is not None  # routed to it: it is in the catalog
        return route, owner.prefix

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        route, prefix = self._route_uri(params.uri)
        meta = self._log_opt_in(ctx, route.server, _forwarded_meta(ctx.meta))

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            request = types.ReadResourceRequest(
                params=types.ReadResourceRequestParams(
                    uri=route.name, input_responses=responses, request_state=state, _meta=meta
                )
            )
            return await self._request(route.server, request, _READ_RESULT)

        async with self._relay.in_call(ctx, route.server):
            result = _returned(
                await self._drive(ctx, route.server, send, params.input_responses, params.request_state)
            )
        if isinstance(result, types.ReadResourceResult):  # contents name the URIs the client knows
            contents = [
                c.model_copy(update={"uri": expose_uri(route.server, c.uri, prefix)}) for c in result.contents
            ]
            result = result.model_copy(update={"contents": contents})
        return result

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        route, _ = self._route_uri(params.uri)
        client = client_of(ctx.session)
        self._track(client)
        await self._add_subscriber(route.server, route.name, client, params.uri)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        route, _ = self._route_uri(params.uri)
        if self._relay.unsubscribe(route.server, route.name, client_of(ctx.session)):
            await self._upstream_unsubscribe(route.server, route.name)
        return types.EmptyResult()

    async def _add_subscriber(self, server: str, uri: str, subscriber: Any, exposed: str) -> None:
        """Note a subscriber to `uri` of `server`; the first one subscribes upstream, in the server's
        era. Raises what refused it, and then nothing is kept."""
        if not self._relay.subscribe(server, uri, subscriber, exposed):
            return
        try:
            if self._modern(server):  # that era subscribes with a listen stream
                await self._watch(server, uri)
            else:
                # The session's mark first: a restart during the request must read as a new one.
                since = self._manager.status(server).since
                request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
                await self._request(server, request, types.EmptyResult)
                self._subscribed_on.setdefault(server, since)
        except BaseException:
            self._relay.unsubscribe(server, uri, subscriber)
            raise

    async def _upstream_unsubscribe(self, server: str, uri: str) -> None:
        if self._watches.stop(server, uri):
            return
        with suppress(Exception):
            request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
            await self._manager.request(server, request, types.EmptyResult)

    def _subscribe_again_where_restarted(self) -> None:
        """An initialize-era server forgets its subscriptions with its session: once one is active
        on a new session, its subscribed URIs are asked for again, in the background."""
        if self._task_group is None:
            return
        for server, since in tuple(self._subscribed_on.items()):
            try:
                status = self._manager.status(server)
            except ServerUnavailable:  # removed by a reload
                del self._subscribed_on[server]
                continue
            if status.active and status.since != since and not self._modern(server):
                self._subscribed_on[server] = status.since
                self._task_group.start_soon(self._subscribe_again, server)

    async def _subscribe_again(self, server: str) -> None:
        for uri in self._relay.subscribed(server):
            request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
            try:
                await self._manager.request(server, request, types.EmptyResult)  # bounded: call_timeout
            except Exception as exc:  # its kind only: the text may quote what redaction never saw
                log.warning(
                    "gateway: subscribing again to %r of %r after its restart failed: %s",
                    uri,
                    server,
                    describe_error(exc)[0],
                )
                continue
            await self._relay.updated(server, uri)  # nothing is replayed: it may have changed meanwhile

    def _modern(self, server: str) -> bool:
        """Whether `server` is active on a 2026-07-28 session now."""
        try:
            status = self._manager.status(server)
        except ServerUnavailable:
            return False
        return status.active and status.protocol_version in MODERN_PROTOCOL_VERSIONS

    async def _watch(self, server: str, uri: str) -> None:
        """Subscribe to `uri` of a 2026-07-28 server: a listen stream held by the gateway."""
        if self._task_group is None:
            raise MCPError(types.INTERNAL_ERROR, "the gateway is not running")
        try:
            await self._watches.start(self._task_group, server, uri)
        except MCPError:
            raise  # the server's own answer
        except Exception as exc:
            why = f"server {server!r} did not take the subscription: {describe_error(exc)[1]}"
            raise MCPError(types.INTERNAL_ERROR, why) from None

    async def _subscriptions_listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        self._listeners += 1
        held: list[tuple[str, str]] = []
        try:
            honored: list[str] = []
            for exposed in params.notifications.resource_subscriptions or ():
                key = await self._listen_to(exposed)
                if key is not None:
                    held.append(key)
                    honored.append(exposed)
            named = params.notifications
            if named.resource_subscriptions:  # the ack then names only what is held
                held_only = named.model_copy(update={"resource_subscriptions": honored or None})
                params = params.model_copy(update={"notifications": held_only})
            return await self._listen(ctx, params)
        finally:
            self._listeners -= 1
            for key in held:
                self._stop_listening_to(*key)

    async def _listen_to(self, exposed: str) -> tuple[str, str] | None:
        """Subscribe upstream to a URI a 2026-07-28 client listens for; its updates then go on the
        bus, where the listen streams naming it take them. None for a URI no active server offers,
        or that its server refused: the acknowledgment leaves it out, so the client can tell."""
        try:
            route, _ = self._route_uri(exposed)
        except MCPError:
            return None
        key = (route.server, route.name)
        self._listened[key] += 1
        if self._listened[key] == 1:
            try:
                await self._add_subscriber(*key, self._bus_subscriber, exposed)
            except BaseException as exc:
                self._stop_listening_to(*key)  # cancelled too (the client went): nothing is kept
                if not isinstance(exc, Exception):
                    raise
                log.warning(
                    "gateway: server %r did not take a listen stream's subscription to %r: %s",
                    route.server,
                    route.name,
                    describe_error(exc)[0],
                )
                return None
        return key

    def _stop_listening_to(self, server: str, uri: str) -> None:
        self._listened[server, uri] -= 1
        if self._listened[server, uri] > 0:
            return
        del self._listened[server, uri]
        if self._relay.unsubscribe(server, uri, self._bus_subscriber) and self._task_group is not None:
            self._task_group.start_soon(self._upstream_unsubscribe, server, uri)

    # -- completion and logging ------------------------------------------------------------------

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            route = self.catalog().route_prompt(ref.name)
            if route is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {ref.name}")
            upstream_ref: Any = ref.model_copy(update={"name": route.name})
        else:
            route, _ = self._route_uri(ref.uri)
            upstream_ref = ref.model_copy(update={"uri": route.name})
        request = types.CompleteRequest(
            params=types.CompleteRequestParams(
                ref=upstream_ref,
                argument=params.argument,
                context=params.context,
                _meta=_forwarded_meta(ctx.meta),
            )
        )
        return _returned(await self._request(route.server, request, types.CompleteResult))

    async def _set_logging_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        """Remember the client's level (messages are filtered per client) and ask every active
        server for the most verbose level any client wants."""
        client = client_of(ctx.session)
        client.state[LOG_LEVEL_KEY] = params.level
        self._track(client)
        wanted = [c.state[LOG_LEVEL_KEY] for c in self._clients if c.state.get(LOG_LEVEL_KEY) in LOG_LEVELS]
        level = min(wanted, key=LOG_LEVELS.index, default=params.level)
        request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))

        async def tell(server: str) -> None:
            with suppress(Exception):
                await self._manager.request(server, request, types.EmptyResult)

        async with anyio.create_task_group() as tg:
            for status in self._manager.statuses():
                capabilities = status.offerings.capabilities
                modern = status.protocol_version in MODERN_PROTOCOL_VERSIONS  # no setLevel: opt-in per call
                declared = capabilities is None or capabilities.logging is not None
                if status.active and not modern and declared:
                    tg.start_soon(tell, status.name)
        return types.EmptyResult()


class _BusSubscriber:
    """The relay's subscriber for every 2026-07-28 listen stream: an update goes on the bus once,
    and each stream whose filter names the URI takes it."""

    def __init__(self, bus: InMemorySubscriptionBus) -> None:
        self._bus = bus

    async def send_resource_updated(self, uri: str) -> None:
        await self._bus.publish(ResourceUpdated(uri=uri))


async def _settle(subscription: Subscription) -> bool:
    """Let a burst of events pass (quiet for `_QUIET`, at most `_MAX_DELAY`); True if the bus ended."""
    deadline = anyio.current_time() + _MAX_DELAY
    while (wait := min(_QUIET, deadline - anyio.current_time())) > 0:
        with anyio.move_on_after(wait) as quiet:
            try:
                await subscription.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return True
        if quiet.cancelled_caught:
            break
    return False
