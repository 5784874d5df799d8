"""The gateway over streamable HTTP: the SDK's session manager behind our checks, under uvicorn.

One endpoint serves both eras: a request whose `MCP-Protocol-Version` header names
2026-07-28 takes the SDK's stateless path; initialize-era clients get sessions with SSE
responses (the only way they can be told about changes, or asked for sampling).

Before the SDK sees a request: only the configured path; Host and Origin checked against
DNS rebinding (loopback plus `allowed_hosts` / `allowed_origins`; an absent Origin is
fine, a wrong one is 403); the bearer token when one is configured (401, compared in
constant time; the header goes nowhere else). The SDK bounds bodies and sessions.

uvicorn runs inside the sidecar's own loop on its own, pre-bound socket (a taken port
is our OSError, not uvicorn's `sys.exit`), without touching the sidecar's signal handlers.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator

import anyio
import uvicorn
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import GatewayConfig
from ..gateway import Gateway

__all__ = ["GatewayListenError", "allowed_host", "allowed_origin", "serve_gateway_http"]

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_LOOPBACK_ORIGINS = tuple(f"{scheme}://{host}" for scheme in ("http", "https") for host in _LOOPBACK_HOSTS)
_START_TIMEOUT = 5.0
_STOP_TIMEOUT = 1.0  # for connections to finish once every session has ended


class GatewayListenError(OSError):
    """The gateway's address cannot be bound; `listen` names it."""

    def __init__(self, listen: str, cause: OSError) -> None:
        super().__init__(cause.errno, os.strerror(cause.errno) if cause.errno else cause.strerror)
        self.listen = listen


def _matches(value: str, allowed: str) -> bool:
    """`value` equals `allowed`, or `allowed` ends in `:*` and `value` is its host on any port."""
    if allowed.endswith(":*"):
        base = allowed[:-2]
        return value == base or (value.startswith(base + ":") and value[len(base) + 1 :].isdigit())
    return value == allowed


def allowed_host(host: str | None, extra: tuple[str, ...], listen: str) -> bool:
    """A Host header we serve: loopback on any port, the address we listen on, or configured."""
    if not host:
        return False
    candidates = (*(f"{h}:*" for h in _LOOPBACK_HOSTS), listen, *extra)
    return any(_matches(host, allowed) for allowed in candidates)


def allowed_origin(origin: str | None, extra: tuple[str, ...]) -> bool:
    """An Origin we serve: none (not a browser), loopback on any port, or configured."""
    if origin is None:
        return True
    candidates = (*(f"{o}:*" for o in _LOOPBACK_ORIGINS), *extra)
    return any(_matches(origin, allowed) for allowed in candidates)


async def _refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON-RPC error body (no id: the request was never read) with an HTTP status."""
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _Checks:
    """Path, Host, Origin and token, before anything of the request is read."""

    def __init__(self, app: ASGIApp, config: GatewayConfig, token: str | None) -> None:
        self._app = app
        self._config = config
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan (we run the session manager ourselves), no websockets
        config = self._config
        if scope["path"] != config.path:
            await _refuse(send, 404, f"not found: the MCP endpoint is {config.path}")
            return
        headers = Headers(scope=scope)
        if not allowed_host(headers.get("host"), config.allowed_hosts, config.listen):
            await _refuse(send, 403, "Host not allowed (DNS rebinding protection); see gateway.allowed_hosts")
            return
        if not allowed_origin(headers.get("origin"), config.allowed_origins):
            await _refuse(send, 403, "Origin not allowed; see gateway.allowed_origins")
            return
        if self._token is not None:
            scheme, _, presented = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), self._token):
                challenge = {"WWW-Authenticate": 'Bearer realm="mcp-sidecar"'}
                await _refuse(send, 401, "a valid bearer token is required", challenge)
                return
        await self._app(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: SIGINT and SIGTERM belong to the sidecar (trap 10)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _stop_accepting(server: _Server) -> None:
    """What uvicorn's shutdown does first: no new connections, idle ones closed, busy ones closed
    once their response is done."""
    for listener in getattr(server, "servers", ()):
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        # proto=IPPROTO_TCP, as uvicorn's own bind has it: asyncio then sets TCP_NODELAY on each
        # connection. Without it a response's head and body wait out a delayed ACK (+40 ms a call).
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(socket.SOMAXCONN)
        except OSError:
            sock.close()
            raise
        return sock
    except OSError as exc:
        raise GatewayListenError(listen, exc) from exc


def _security(config: GatewayConfig) -> TransportSecuritySettings:
    """The SDK's own Host/Origin check, as a second line behind ours (trap 4: off unless given)."""
    hosts = [f"{host}:*" for host in _LOOPBACK_HOSTS] + [config.listen, *config.allowed_hosts]
    origins = [f"{origin}:*" for origin in _LOOPBACK_ORIGINS] + list(config.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


@contextlib.asynccontextmanager
async def serve_gateway_http(
    gateway: Gateway, config: GatewayConfig, token: str | None
) -> AsyncIterator[int]:
    """Serve `gateway` at `config.listen` + `config.path`; yields the bound port. Leaving ends
    every session and listen stream, then the server, within about a second."""
    sessions = StreamableHTTPSessionManager(
        app=gateway.server,
        json_response=False,  # SSE: progress, notifications and requests ride a call's stream
        stateless=False,  # initialize-era clients need sessions to be told anything (trap 5)
        security_settings=_security(config),
        max_request_body_size=config.max_body_bytes,
        max_sessions=config.max_sessions,
    )
    app = _Checks(StreamableHTTPASGIApp(sessions), config, token)
    sock = _bind(config.listen)
    server = _Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
            http="httptools",  # C parser: h11 cost ~0.3 ms of CPU per call on the 2-core machine
            timeout_graceful_shutdown=_STOP_TIMEOUT,
        )
    )
    finished = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            finished.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            async with sessions.run():
                with anyio.fail_after(_START_TIMEOUT):
                    while not server.started:
                        if finished.is_set():
                            raise RuntimeError("the gateway's HTTP server ended while starting")
                        await anyio.sleep(0.005)
                try:
                    yield sock.getsockname()[1]
                finally:
                    server.should_exit = True
                    _stop_accepting(server)
                    await gateway.close()
            # Leaving `sessions.run()` ended every session, so their SSE streams are closed and
            # the connections finish at once. uvicorn's own shutdown would wait for its next
            # tick and then sleep; the shutdown budget is better spent elsewhere.
            with anyio.move_on_after(_STOP_TIMEOUT):
                while server.server_state.connections and not finished.is_set():
                    await anyio.sleep(0.005)
            server.force_exit = True
            tg.cancel_scope.cancel()
    finally:
        sock.close()
