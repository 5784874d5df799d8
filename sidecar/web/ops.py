"""The ops HTTP server: `/metrics`, `/livez`, `/readyz`, `/health/mcp`, the status page
at `/`, and the admin POSTs (reconnect, drop, reload) behind a bearer token.

aiohttp glue only; every answer is computed from `MCPServerManager.statuses()` at
request time, so it cannot drift from the supervisors' truth.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from mcp.shared.exceptions import MCPError

from ..config import ConfigError
from ..errors import ServerUnavailable, ToolCallError, ToolCallTimeout
from ..manager import MCPServerManager
from ..state import ServerState, ServerStatus
from ..telemetry.metrics import SidecarMetrics, wants_openmetrics
from .status_page import render_status_page

__all__ = ["Admin", "build_app", "health_document", "serve_ops"]


@dataclass(frozen=True)
class Admin:
    """What the admin endpoints need: the token (None disables them) and how to reload."""

    token: str | None
    token_env: str | None = None  # named in the "disabled" answer, so a user knows what to set
    reload: Callable[[], Awaitable[dict[str, list[str]]]] | None = None


GatewayReport = Callable[[], dict[str, Any]]  # what the gateway exposes now (`Gateway.report`)

MANAGER_KEY = web.AppKey("manager", MCPServerManager)
METRICS_KEY = web.AppKey("metrics", SidecarMetrics)
ADMIN_KEY = web.AppKey("admin", Admin)
GATEWAY_KEY = web.AppKey("gateway", GatewayReport)


def _server_document(status: ServerStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "state": status.state.value,
        "transport": status.transport,
        "criticality": status.criticality,
        "since": status.since,
        "last_error": status.last_error,
        "last_error_type": status.last_error_type,
        "consecutive_failures": status.consecutive_failures,
        "reconnect_attempts": status.reconnect_attempts,
        "tools": list(status.tools),
        "protocol_version": status.protocol_version,
        "server_info": {"name": status.server_name, "version": status.server_version}
        if status.server_name
        else None,
    }


def health_document(statuses: list[ServerStatus]) -> dict[str, Any]:
    """The `/health/mcp` JSON: `healthy` when all are active, `unhealthy` when a critical one
    (or every one) is down, else `degraded`."""
    active = [s.name for s in statuses if s.active]
    failed = [s.name for s in statuses if s.down]
    critical_down = any(s.criticality == "critical" and not s.active for s in statuses)
    if len(active) == len(statuses):
        overall = "healthy"
    elif critical_down or not active:
        overall = "unhealthy"
    else:
        overall = "degraded"
    return {
        "status": overall,
        "active": active,
        "failed": failed,
        "total": len(statuses),
        "active_count": len(active),
        "servers": [_server_document(s) for s in statuses],
    }


async def _livez(request: web.Request) -> web.Response:
    # Answering at all proves the event loop is responsive.
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    statuses = request.app[MANAGER_KEY].statuses()
    reasons = [
        f"{s.name}: {s.state.value}" + (f" ({s.last_error})" if s.last_error else "")
        for s in statuses
        if s.criticality == "critical" and s.state is not ServerState.ACTIVE
    ]
    if reasons:
        return web.Response(status=503, text="not ready\n" + "\n".join(reasons) + "\n")
    return web.Response(text="ready\n")


def _document(app: web.Application) -> dict[str, Any]:
    """`health_document`, plus the gateway's exposure and collisions when it runs."""
    document = health_document(app[MANAGER_KEY].statuses())
    report = app.get(GATEWAY_KEY)
    if report is not None:
        document["gateway"] = report()
    return document


async def _health(request: web.Request) -> web.Response:
    return web.json_response(_document(request.app))


async def _status_page(request: web.Request) -> web.Response:
    document = _document(request.app)
    return web.Response(
        text=render_status_page(document),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].render(wants_openmetrics(request.headers.get("Accept", "")))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # as is: aiohttp would split off the parameters
    return response


# -- admin -------------------------------------------------------------------------------------


def _authorize(request: web.Request) -> None:
    """Raise unless the request carries the admin bearer token (compared in constant time)."""
    admin = request.app[ADMIN_KEY]
    if admin.token is None:
        where = f" (set ${admin.token_env} to enable them)" if admin.token_env else ""
        raise web.HTTPForbidden(text=f"admin endpoints are disabled{where}\n")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), admin.token.encode()
    ):
        raise web.HTTPUnauthorized(
            text="a valid bearer token is required\n",
            headers={"WWW-Authenticate": 'Bearer realm="mcp-sidecar"'},
        )


async def _act_on_server(
    request: web.Request, act: Callable[[MCPServerManager, str], Awaitable[object]]
) -> web.Response:
    """Authorize, run `act` on the named server, and answer with its state afterwards."""
    _authorize(request)
    manager, name = request.app[MANAGER_KEY], request.match_info["name"]
    try:
        await act(manager, name)
        return web.json_response(_server_document(manager.status(name)))
    except ServerUnavailable as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None


async def _reconnect(request: web.Request) -> web.Response:
    return await _act_on_server(request, lambda manager, name: manager.reconnect([name], failed_only=False))


async def _drop(request: web.Request) -> web.Response:
    return await _act_on_server(request, lambda manager, name: manager.drop([name]))


async def _call_tool(request: web.Request) -> web.Response:
    """Call one tool on one server, as an on-call engineer checking it would; the call counts
    in the tool-call metrics like any other. The body is the arguments object (or empty)."""
    _authorize(request)
    server, tool = request.match_info["name"], request.match_info["tool"]
    try:
        arguments = await request.json() if request.can_read_body else {}
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be a JSON object of arguments\n") from None
    if not isinstance(arguments, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object of arguments\n")
    try:
        result = await request.app[MANAGER_KEY].call_tool(server, tool, arguments)
    except ServerUnavailable as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
    except ToolCallTimeout as exc:
        raise web.HTTPGatewayTimeout(text=f"{exc}\n") from None
    except ToolCallError as exc:
        raise web.HTTPBadGateway(text=f"{exc}\n") from None
    except MCPError as exc:  # the server answered with a JSON-RPC error
        return web.json_response({"error": {"code": exc.code, "message": exc.message}}, status=502)
    # Encoded by pydantic's serializer, not a dict through json.dumps: a large answer holds the
    # event loop (every probe, /livez) for a fifth of the time.
    body = result.model_dump_json(by_alias=True, exclude_none=True)
    return web.Response(text=body, content_type="application/json")


async def _reload(request: web.Request) -> web.Response:
    _authorize(request)
    reload = request.app[ADMIN_KEY].reload
    if reload is None:
        raise web.HTTPNotImplemented(text="this sidecar was not started from a config file\n")
    try:
        return web.json_response(await reload())
    except ConfigError as exc:  # the running servers stay as they are
        raise web.HTTPBadRequest(text="\n".join(exc.problems) + "\n") from None


def build_app(
    manager: MCPServerManager, metrics: SidecarMetrics, admin: Admin, gateway: GatewayReport | None = None
) -> web.Application:
    app = web.Application()
    app[MANAGER_KEY] = manager
    app[METRICS_KEY] = metrics
    app[ADMIN_KEY] = admin
    if gateway is not None:
        app[GATEWAY_KEY] = gateway
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/health/mcp", _health)
    app.router.add_get("/", _status_page)
    app.router.add_post("/servers/{name}/reconnect", _reconnect)
    app.router.add_post("/servers/{name}/drop", _drop)
    app.router.add_post("/servers/{name}/tools/{tool:[^/]+}", _call_tool)  # any tool name, braces too
    app.router.add_post("/-/reload", _reload)
    return app


@asynccontextmanager
async def serve_ops(
    manager: MCPServerManager,
    listen: str,
    metrics: SidecarMetrics,
    admin: Admin,
    gateway: GatewayReport | None = None,
) -> AsyncIterator[int]:
    """Serve the ops endpoints on `host:port`; yields the bound port (useful with port 0)."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(build_app(manager, metrics, admin, gateway), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
    try:
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
