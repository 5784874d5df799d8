"""`MCPServerManager`: every configured server under one roof, as a library and for the service.

    async with MCPServerManager(servers=[...]) as manager:
        [s.name for s in manager.active_servers]    # the servers serving calls now
        await manager.call_tool("fs", "read_file", {"path": "/etc/hosts"})
        manager.drop_failed_servers()               # out of service at once; await it, or not
        await manager.reconnect(failed_only=True)

Entering starts one supervisor task per server and returns when each has finished
its first connect attempt (each bounded by its own connect timeout, all in
parallel). A failing server never raises out of `__aenter__` unless `strict` is set
and it is critical. Leaving stops all servers concurrently within one deadline.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from .config import ServerConfig, SidecarConfig
from .connection import CallOptions, Connection, Passthrough
from .errors import (
    ServerFailure,
    ServerUnavailable,
    StartupError,
    ToolCallError,
    ToolCallTimeout,
    answered_by_server,
    describe_error,
    is_tool_error,
)
from .events import EventBus, Subscription
from .http_probe import HttpProber
from .redact import redact
from .state import ServerState, ServerStatus, is_down
from .supervisor import Supervisor
from .telemetry.tracing import tool_call_span
from .transports import tls_context

__all__ = ["Dropping", "MCPServerManager", "plan_reload"]


def _plain(arguments: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if arguments is None else dict(arguments)


_GRACE = 0.3  # on top of the close budget, for the supervisors to publish their last events
_CONNECT_SLOTS = 64  # handshakes under way at once, as `sidecar.max_concurrent_connects` defaults


class Dropping(list[str]):
    """The names of the servers a drop took out of service, in config order.

    The drop has taken effect when this is returned (`failed_servers` no longer lists a server
    that was down), so using it as a plain list is enough. Awaiting it also waits, within the
    shutdown timeout, until each server is parked (an active one: its connection closed), and
    gives the names as a plain list.
    """

    __slots__ = ("_settle",)

    def __init__(self, names: Iterable[str], settle: Callable[[], Awaitable[None]]) -> None:
        super().__init__(names)
        self._settle = settle

    def __await__(self) -> Generator[Any, None, list[str]]:
        return self._settled().__await__()

    async def _settled(self) -> list[str]:
        await self._settle()
        return list(self)


class MCPServerManager:
    """Connects to many MCP servers at once and keeps them connected, or says why not."""

    def __init__(
        self,
        servers: Sequence[ServerConfig] | SidecarConfig,
        *,
        strict: bool | None = None,
        startup_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        secrets: Iterable[str] = (),
        max_concurrent_connects: int | None = None,
    ) -> None:
        if isinstance(servers, SidecarConfig):
            settings = servers.sidecar
            if max_concurrent_connects is None:
                max_concurrent_connects = settings.max_concurrent_connects
            configs = tuple(servers.servers)
            strict = settings.strict if strict is None else strict
            startup_timeout = settings.startup_timeout if startup_timeout is None else startup_timeout
            shutdown_timeout = settings.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
            secrets = (*servers.secrets(), *secrets)
        else:
            configs = tuple(servers)
        names = [config.name for config in configs]
        if len(set(names)) != len(names):
            raise ValueError("server names must be unique")
        self.strict = bool(strict)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = 1.5 if shutdown_timeout is None else shutdown_timeout
        self._bus = EventBus()
        self._secrets = frozenset(secrets)
        self._passthrough: Passthrough | None = None
        self._connect_slots = anyio.CapacityLimiter(max_concurrent_connects or _CONNECT_SLOTS)
        self._prober = HttpProber(tls_context)  # every streamable-HTTP server's probes
        self._supervisors: dict[str, Supervisor] = {
            config.name: self._new_supervisor(config) for config in configs
        }
        self._task_group: TaskGroup | None = None
        self._reload_lock = anyio.Lock()  # one `apply` at a time

    def _new_supervisor(self, config: ServerConfig) -> Supervisor:
        supervisor = Supervisor(
            config,
            self._bus,
            close_timeout=self.shutdown_timeout,
            secrets=self._secrets,
            connect_slots=self._connect_slots,
            prober=self._prober,
        )
        supervisor.passthrough = self._passthrough
        return supervisor

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> MCPServerManager:
        if self._task_group is not None:
            raise RuntimeError("the manager is already running")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        for supervisor in self._supervisors.values():
            self._task_group.start_soon(supervisor.run, name=f"supervisor:{supervisor.name}")
        try:
            await self.wait_started(self.startup_timeout)
            if self.strict:
                down = {
                    status.name: status.last_error or status.state.value
                    for status in self.statuses()
                    if status.criticality == "critical" and not status.active
                }
                if down:
                    raise StartupError(down)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return
        for supervisor in self._supervisors.values():
            supervisor.request_stop()
        # Each supervisor closes within its budget; past it, cancellation (stdio children
        # are still killed, in a shielded scope) guarantees that leaving is bounded.
        task_group.cancel_scope.deadline = anyio.current_time() + self.shutdown_timeout + _GRACE
        try:
            await task_group.__aexit__(None, None, None)
        finally:
            self._bus.close()
            with anyio.move_on_after(_GRACE, shield=True):
                await self._prober.aclose()

    async def wait_started(self, timeout: float | None = None) -> None:
        """Wait until every server has finished its first connect attempt (or `timeout`)."""
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            for supervisor in self._supervisors.values():
                await supervisor.first_attempt_done.wait()

    # -- what is true now -----------------------------------------------------------------

    # The server lists hold `ServerStatus` snapshots (`.name`, `.state`, `.last_error`, `.tools`
    # ...), in config order, each taken now: immutable, so a caller may keep one.

    @property
    def all_servers(self) -> list[ServerStatus]:
        """Every configured server."""
        return self.statuses()

    @property
    def active_servers(self) -> list[ServerStatus]:
        """Servers connected and healthy now: the ones calls may go to."""
        return [status for status in self.statuses() if status.active]

    @property
    def failed_servers(self) -> list[ServerStatus]:
        """Servers that should be up and are not (reconnecting, or given up but kept)."""
        return [status for status in self.statuses() if is_down(status.state)]

    @property
    def dropped_servers(self) -> list[ServerStatus]:
        """Servers out of service until `reconnect()` names them (by hand or by policy)."""
        return [status for status in self.statuses() if status.state is ServerState.DROPPED]

    @property
    def errors(self) -> dict[str, ServerFailure]:
        """Server name -> why it is down, for every server failed or dropped now that has an error:
        a `ServerFailure` whose text is the last error (`.error_type`, `.state` say more)."""
        return {
            status.name: ServerFailure(
                status.name, status.state.value, status.last_error_type, status.last_error
            )
            for status in self.statuses()
            if status.last_error
            and status.state in (ServerState.RECONNECTING, ServerState.FAILED, ServerState.DROPPED)
        }

    def status(self, server: str) -> ServerStatus:
        return self._supervisor(server).status

    def statuses(self) -> list[ServerStatus]:
        """A snapshot of every server, in config order."""
        return [supervisor.status for supervisor in self._supervisors.values()]

    def config(self, server: str) -> ServerConfig:
        return self._supervisor(server).config

    def tools(self) -> dict[str, tuple[types.Tool, ...]]:
        """The tools of every active server, as the servers described them."""
        result: dict[str, tuple[types.Tool, ...]] = {}
        for supervisor in self._supervisors.values():
            connection = supervisor.connection
            if connection is not None:
                result[supervisor.name] = connection.tools
        return result

    def subscribe(self, max_buffer: int = 1024) -> Subscription:
        """Lifecycle events from now on. A subscriber that falls behind loses events, never blocks."""
        return self._bus.subscribe(max_buffer)

    # -- acting -----------------------------------------------------------------------------

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        meta: dict[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> types.CallToolResult:
        """Call a tool on an active server, within `timeout` (default: the server's `call_timeout`).

        Raises `ServerUnavailable` at once when the server is not active, and
        `ToolCallError` when the connection fails under the call. An error the tool
        itself reports comes back as a result with `is_error` set, as MCP defines it.
        """
        supervisor = self._supervisor(server)
        config = supervisor.config
        # A CLIENT span continuing the caller's trace (current context, or `traceparent`
        # in `meta`); the mcp SDK passes the context on to the server in `params._meta`.
        with tool_call_span(server, tool, config.transport, config=config, carrier=meta) as span:
            connection = _live_connection(supervisor)
            span.set_protocol_version(connection.protocol_version)
            result = await self._call(supervisor, connection, tool, arguments, timeout, meta, options)
            span.result(result)
            return result

    async def _call(
        self,
        supervisor: Supervisor,
        connection: Connection,
        tool: str,
        arguments: Mapping[str, Any] | None,
        timeout: float | None,
        meta: dict[str, Any] | None,
        options: CallOptions | None = None,
    ) -> types.CallToolResult:
        """The call itself, bounded, its failure typed, and a `ToolCalled` event either way."""
        server = supervisor.name
        deadline = supervisor.config.call_timeout if timeout is None else timeout
        started = anyio.current_time()
        error_type: str | None = None
        try:
            with anyio.fail_after(deadline):
                if options is None:
                    result = await connection.call_tool(tool, dict(arguments or {}), meta)
                else:  # through the gateway: may be a 2026-07-28 InputRequiredResult
                    result = await connection.call_tool_with(tool, _plain(arguments), meta, options, deadline)
            error_type = "tool_error" if is_tool_error(result) else None
            return result
        except TimeoutError as exc:
            error_type = "timeout"
            raise ToolCallTimeout(server, tool, "timeout", f"no answer within {deadline:g}s") from exc
        except Exception as exc:
            error_type, message = describe_error(exc)
            if answered_by_server(exc):
                raise  # the server answered with a JSON-RPC error: MCPError, as the SDK raises it
            raise ToolCallError(server, tool, error_type, redact(message, self._secrets)) from exc
        except BaseException:
            error_type = "cancelled"
            raise
        finally:
            self._bus.publish(supervisor.tool_called(tool, anyio.current_time() - started, error_type))

    async def reconnect(
        self, servers: Iterable[str] | None = None, *, failed_only: bool = True
    ) -> list[ServerStatus]:
        """Reconnect now, without waiting for backoff, and return once each attempt has finished.

        By default only servers that are not active (failed, dropped); `failed_only=False`
        also cycles active ones (all of them when `servers` is None). Returns
        `active_servers` as they are then.
        """
        chosen = (
            [self._supervisor(name) for name in servers]
            if servers is not None
            else list(self._supervisors.values())
        )
        if failed_only:
            chosen = [s for s in chosen if s.status.state is not ServerState.ACTIVE]
        chosen = [s for s in chosen if s.status.state is not ServerState.STOPPED]
        marks = {s.name: s.attempts_completed for s in chosen}
        for supervisor in chosen:
            supervisor.request_reconnect()
        async with anyio.create_task_group() as tg:
            for supervisor in chosen:
                tg.start_soon(supervisor.wait_attempt_after, marks[supervisor.name])
        return self.active_servers

    def drop_failed_servers(self) -> Dropping:
        """Take every failed server out of service (no more reconnects), at once.

        Not a coroutine: `manager.drop_failed_servers()` has taken effect when it returns
        (`failed_servers` is empty, `dropped_servers` lists them). Returns their names;
        `await manager.drop_failed_servers()` works too (see `Dropping`).
        """
        return self.drop(status.name for status in self.failed_servers)

    def drop(self, servers: Iterable[str]) -> Dropping:
        """Take servers out of service until `reconnect()` names them; returns their names.

        A server that is down is dropped at once; an active one as soon as its own task has
        closed the connection, which awaiting the result waits for.
        """
        chosen = [self._supervisor(name) for name in servers]
        for supervisor in chosen:
            supervisor.request_drop()

        async def settle() -> None:
            with anyio.move_on_after(self.shutdown_timeout + _GRACE):
                for supervisor in chosen:
                    await supervisor.wait_for_state({ServerState.DROPPED, ServerState.STOPPED})

        return Dropping((supervisor.name for supervisor in chosen), settle)

    async def apply(self, servers: Sequence[ServerConfig] | SidecarConfig) -> dict[str, list[str]]:
        """Make the running servers match `servers` (a reload): start the new ones, stop the
        removed ones, restart the ones whose config changed, leave the rest alone.

        Returns the names `added`, `removed` and `restarted`. Stopping is bounded by the
        shutdown timeout; new servers connect in the background. Reloads run one at a time:
        a second one waits, then compares with what the first left, so concurrent reloads
        of one file restart a server once, and every supervisor started is one the manager
        knows (and stops). Once begun, a reload is not abandoned halfway by cancellation.
        """
        if isinstance(servers, SidecarConfig):
            secrets = servers.secrets()
            servers = servers.servers
        else:
            secrets = frozenset()
        wanted = {config.name: config for config in servers}
        if len(wanted) != len(servers):
            raise ValueError("server names must be unique")
        async with self._reload_lock:
            if self._task_group is None:
                raise RuntimeError("the manager is not running")
            self._secrets |= secrets
            current = self._supervisors
            changes = plan_reload({name: s.config for name, s in current.items()}, wanted)
            leaving = [current[name] for name in (*changes["removed"], *changes["restarted"])]
            with anyio.CancelScope(shield=True):  # bounded: the wait below has its own deadline
                for supervisor in leaving:
                    supervisor.request_stop()
                with anyio.move_on_after(self.shutdown_timeout + _GRACE):
                    for supervisor in leaving:
                        await supervisor.finished.wait()
                # Looked at again after the wait: the manager may have been stopped meanwhile.
                task_group = self._task_group
                if task_group is None:
                    raise RuntimeError("the manager stopped during the reload")
                supervisors: dict[str, Supervisor] = {}
                for name, config in wanted.items():
                    supervisor = current.get(name)
                    if supervisor is None or supervisor in leaving:
                        supervisor = self._new_supervisor(config)
                        task_group.start_soon(supervisor.run, name=f"supervisor:{name}")
                    supervisors[name] = supervisor
                self._supervisors = supervisors
        return changes

    def _supervisor(self, server: str) -> Supervisor:
        try:
            return self._supervisors[server]
        except KeyError:
            raise ServerUnavailable(server, "no such server is configured") from None

    # -- for the gateway ------------------------------------------------------------------------

    def set_passthrough(self, passthrough: Passthrough | None) -> None:
        """Who answers what servers ask of their callers (sampling, elicitation) and hears their
        logs and notifications; servers connected from now on use it (set it before entering)."""
        self._passthrough = passthrough
        for supervisor in self._supervisors.values():
            supervisor.passthrough = passthrough

    async def request(
        self,
        server: str,
        request: Any,
        result_type: Any,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send one MCP request (`prompts/get`, `resources/read`, `completion/complete` ...) to an
        active server within `timeout` (default: its `call_timeout`); the result as it came.

        Raises like `call_tool`: `ServerUnavailable` at once, `MCPError` when the server
        answered with one, `ToolCallError` (naming the method) when the connection failed.
        """
        supervisor = self._supervisor(server)
        connection = _live_connection(supervisor)
        deadline = supervisor.config.call_timeout if timeout is None else timeout
        method = str(getattr(request, "method", "request"))
        try:
            with anyio.fail_after(deadline):
                return await connection.send_request(request, result_type, timeout=deadline)
        except TimeoutError as exc:
            raise ToolCallTimeout(server, method, "timeout", f"no answer within {deadline:g}s") from exc
        except Exception as exc:
            if answered_by_server(exc):
                raise  # the server answered with a JSON-RPC error: MCPError, as the SDK raises it
            error_type, message = describe_error(exc)
            raise ToolCallError(server, method, error_type, redact(message, self._secrets)) from exc

    @asynccontextmanager
    async def listen_resources(self, server: str, uris: Sequence[str]) -> AsyncIterator[Any]:
        """A `subscriptions/listen` stream of its own for `uris` on a 2026-07-28 server's live session
        (the gateway's resource subscriptions: that era has no `resources/subscribe`), acknowledged
        within the server's `call_timeout`; the SDK's `Subscription`, ended when the block exits.

        Raises `ServerUnavailable` when the server is not active, `MCPError` when it refused,
        `TimeoutError` without an acknowledgment, and `ToolCallError` (its message redacted)
        when the connection failed under it.
        """
        supervisor = self._supervisor(server)
        connection = _live_connection(supervisor)
        async with AsyncExitStack() as stack:
            try:
                with anyio.fail_after(supervisor.config.call_timeout):
                    subscription = await stack.enter_async_context(
                        connection.client.listen(resource_subscriptions=list(uris))
                    )
            except Exception as exc:
                if isinstance(exc, TimeoutError) or answered_by_server(exc):
                    raise
                error_type, message = describe_error(exc)
                method = "subscriptions/listen"
                raise ToolCallError(server, method, error_type, redact(message, self._secrets)) from exc
            yield subscription


def _live_connection(supervisor: Supervisor) -> Connection:
    """The server's live session, or `ServerUnavailable` naming its state and last error."""
    connection = supervisor.connection
    if connection is None:
        status = supervisor.status
        reason = status.state.value + (f" ({status.last_error})" if status.last_error else "")
        raise ServerUnavailable(supervisor.name, reason)
    return connection


def plan_reload(
    current: Mapping[str, ServerConfig], wanted: Mapping[str, ServerConfig]
) -> dict[str, list[str]]:
    """Which servers a reload adds, removes and restarts (their config changed), in config order."""
    return {
        "added": [name for name in wanted if name not in current],
        "removed": [name for name in current if name not in wanted],
        "restarted": [name for name, config in current.items() if name in wanted and wanted[name] != config],
    }
