"""The way back through the gateway: what a server asks of its caller, and what it tells it.

A server's sampling, elicitation and roots requests, log messages and resource updates arrive
at the sidecar's client session with that server (`connection.Passthrough`), shared by
every gateway client. The SDK's callbacks get the server's request id and `_meta`, not
the call that caused them, and run in the session's reader task, not the caller's
(trap 9). So the gateway notes each call in flight, per server (`Relay.in_call`):

- when every call in flight on a server comes from one client session, that session is
  asked, on the stream of its oldest call (the others are its own calls too);
- when calls from several sessions are in flight on it, the request is refused with a
  clear error (the server sees an `ErrorData`; the call goes on) rather than shown to a
  user who did not cause it;
- a 2026-07-28 caller cannot be asked (that era has no server-to-client requests).

The cost is a list append and remove per call, and one refused request per overlap of
two clients on one server that asks its caller something.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientRequestContext
from mcp.server.connection import Connection as ClientConnection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .errors import describe_error

__all__ = [
    "LOG_LEVELS",
    "LOG_LEVEL_KEY",
    "NOTIFY_TIMEOUT",
    "Relay",
    "admits",
    "choose_caller",
    "client_of",
    "is_modern",
]

NOTIFY_TIMEOUT = 1.0  # a client that does not read its stream cannot hold anyone up
LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
)  # fmt: skip
LOG_LEVEL_KEY = "mcp_sidecar.log_level"  # in a client connection's `state`: what it asked for


def client_of(session: ServerSession) -> ClientConnection:
    """The client connection a request came on: one per initialize-era session, one per request
    in 2026-07-28. Private in the SDK (trap 2); mcp is pinned to 2.3.x and a test covers it."""
    return session._connection


def is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _refusal(message: str) -> types.ErrorData:
    return types.ErrorData(code=types.INVALID_REQUEST, message=message)


@dataclass(eq=False)
class _Call:
    """A call running on a server for a client: who can answer what that server asks meanwhile."""

    server: str
    session: ServerSession
    client: ClientConnection
    request_id: types.RequestId | None
    modern: bool


class _InFlight:
    """`Relay.in_call`'s block: a plain object, not an async generator (every tool call enters
    one, and an `asynccontextmanager` costs a generator, its loop hook and a weak reference)."""

    __slots__ = ("_call", "_calls", "_server")

    def __init__(self, calls: dict[str, list[_Call]], server: str, call: _Call) -> None:
        self._calls, self._server, self._call = calls, server, call

    async def __aenter__(self) -> None:
        self._calls.setdefault(self._server, []).append(self._call)

    async def __aexit__(self, *exc_info: object) -> None:
        calls = self._calls.get(self._server)
        if calls is not None:
            calls.remove(self._call)
            if not calls:
                del self._calls[self._server]


def choose_caller(calls: Sequence[_Call]) -> _Call | None:
    """Of the calls in flight on one server (oldest first), the one whose client is asked: the
    oldest, when all are one client's; None when there are none, or several clients' (ambiguous)."""
    if not calls:
        return None
    first = calls[0]
    return first if all(call.client is first.client for call in calls) else None


def admits(wanted: str | None, level: str) -> bool:
    """Whether a client that asked for `wanted` (None: nothing asked) gets a message at `level`."""
    if wanted is None or wanted not in LOG_LEVELS or level not in LOG_LEVELS:
        return True
    return LOG_LEVELS.index(level) >= LOG_LEVELS.index(wanted)


class Relay:
    """Routes what servers ask and tell to the gateway client that should hear it."""

    def __init__(
        self, call_timeout: Callable[[str], float], clients: Callable[[], Iterable[ClientConnection]]
    ) -> None:
        self._call_timeout = call_timeout  # a server's call_timeout bounds what it asks, too
        self._clients = clients  # the initialize-era sessions open now
        self._calls: dict[str, list[_Call]] = {}
        self._subscribers: dict[tuple[str, str], dict[ClientConnection, str]] = {}

    # -- calls in flight ---------------------------------------------------------------------

    def in_call(self, ctx: ServerRequestContext[Any, Any], server: str) -> _InFlight:
        """Note the request of `ctx` as in flight on `server` while the (async with) block runs."""
        return _InFlight(
            self._calls,
            server,
            _Call(server, ctx.session, client_of(ctx.session), ctx.request_id, is_modern(ctx)),
        )

    def caller(self, server: str) -> _Call | None:
        """The call whose client answers what `server` asks now."""
        return choose_caller(self._calls.get(server, ()))

    # -- what a server asks --------------------------------------------------------------------

    async def ask(
        self,
        server: str,
        session: ServerSession,
        request_id: types.RequestId | None,
        client: ClientConnection,
        request: Any,
    ) -> Any:
        """Ask an initialize-era client what `server` asked (on the stream of its call): the
        answer, or `ErrorData` saying why there is none. The server's call_timeout bounds it."""
        with anyio.move_on_after(self._call_timeout(server)) as scope:
            answer = await self._ask(session, request_id, client, request)
        if scope.cancelled_caught:
            return types.ErrorData(
                code=types.INTERNAL_ERROR, message="the calling client did not answer in time"
            )
        return answer

    async def _ask(
        self,
        session: ServerSession,
        request_id: types.RequestId | None,
        client: ClientConnection,
        request: Any,
    ) -> Any:
        if isinstance(request, types.CreateMessageRequest):
            capable = client.check_capability(types.ClientCapabilities(sampling=types.SamplingCapability()))
            params = request.params
            wanted: Any = types.CreateMessageResultWithTools if params.tools or params.tool_choice else None
            wanted = wanted or types.CreateMessageResult
        elif isinstance(request, types.ElicitRequest):
            capable = client.check_capability(
                types.ClientCapabilities(elicitation=types.ElicitationCapability())
            )
            wanted = types.ElicitResult
        elif isinstance(request, types.ListRootsRequest):
            # The roots of the client whose call asks: a server that caches them per session
            # (its one session is the sidecar's) keeps the first caller's, as with any proxy.
            capable = client.check_capability(types.ClientCapabilities(roots=types.RootsCapability()))
            wanted = types.ListRootsResult
        else:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message=f"the gateway does not relay {request.method}"
            )
        if not capable:
            message = f"the calling client does not support {request.method}"
            return types.ErrorData(code=types.INVALID_REQUEST, message=message)
        metadata = ServerMessageMetadata(related_request_id=request_id) if request_id is not None else None
        try:
            return await session.send_request(request, wanted, metadata=metadata)
        except MCPError as exc:
            return exc.error
        except Exception as exc:  # the caller went away, or answered nonsense
            return types.ErrorData(code=types.INTERNAL_ERROR, message=describe_error(exc)[1])

    async def sampling(
        self, server: str, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        return await self._relay(server, types.CreateMessageRequest(params=params))

    async def elicitation(
        self, server: str, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await self._relay(server, types.ElicitRequest(params=params))

    async def roots(
        self, server: str, context: ClientRequestContext
    ) -> types.ListRootsResult | types.ErrorData:
        return await self._relay(server, types.ListRootsRequest())

    async def _relay(self, server: str, request: Any) -> Any:
        call = self.caller(server)
        if call is None:
            why = "no call" if not self._calls.get(server) else "calls from several clients"
        elif call.modern:
            why = "a 2026-07-28 call (that era cannot be asked)"
        else:
            return await self.ask(server, call.session, call.request_id, call.client, request)
        return _refusal(f"the gateway cannot relay {request.method} from {server!r}: {why} in flight")

    # -- what a server tells -------------------------------------------------------------------

    async def log(self, server: str, params: types.LoggingMessageNotificationParams) -> None:
        """A server's log message: to the client whose call is running there, else to every
        initialize-era client that asked for logs (logging/setLevel) at that level."""
        params = params.model_copy(update={"logger": params.logger or server})
        call = self.caller(server)
        with suppress(Exception), anyio.move_on_after(NOTIFY_TIMEOUT):
            if call is not None:
                if call.modern or admits(call.client.state.get(LOG_LEVEL_KEY), params.level):
                    with warnings.catch_warnings():  # deprecated in 2026-07-28, where it is opt-in per call
                        warnings.simplefilter("ignore", MCPDeprecationWarning)
                        await call.session.send_log_message(
                            params.level, params.data, params.logger, related_request_id=call.request_id
                        )
                return
            for client in tuple(self._clients()):
                wanted = client.state.get(LOG_LEVEL_KEY)
                if wanted is not None and admits(wanted, params.level):
                    await client.notify(
                        "notifications/message", params.model_dump(by_alias=True, exclude_none=True)
                    )

    async def notification(self, server: str, message: Any) -> None:
        """A server's notification: resource updates go to the clients that subscribed."""
        if not isinstance(message, types.ResourceUpdatedNotification):
            return  # list changes reach the gateway as lifecycle events, through the core
        await self.updated(server, message.params.uri)

    async def updated(self, server: str, uri: str) -> None:
        """Tell the clients subscribed to `uri` of `server` that it changed (each under its URI)."""
        subscribers = self._subscribers.get((server, uri), {})
        for client, exposed in tuple(subscribers.items()):
            with suppress(Exception), anyio.move_on_after(NOTIFY_TIMEOUT):
                await client.send_resource_updated(exposed)

    # -- resource subscriptions: one upstream subscription, however many clients share it ------

    def subscribe(self, server: str, uri: str, client: ClientConnection, exposed: str) -> bool:
        """Note `client` as subscribed to `uri` of `server` (shown to it as `exposed`); True when
        it is the first, so the server must be asked."""
        subscribers = self._subscribers.setdefault((server, uri), {})
        subscribers[client] = exposed
        return len(subscribers) == 1

    def unsubscribe(self, server: str, uri: str, client: ClientConnection) -> bool:
        """Forget one subscriber; True when it was the last, so the server may stop sending."""
        subscribers = self._subscribers.get((server, uri), {})
        if subscribers.pop(client, None) is None or subscribers:
            return False
        del self._subscribers[(server, uri)]
        return True

    def subscribed(self, server: str) -> list[str]:
        """The URIs of `server` some client is subscribed to now."""
        return [uri for owner, uri in self._subscribers if owner == server]

    def forget(self, client: ClientConnection) -> list[tuple[str, str]]:
        """A client left: the (server, uri) subscriptions nobody holds any more."""
        return [key for key in list(self._subscribers) if self.unsubscribe(*key, client)]
