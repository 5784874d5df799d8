"""The ops HTTP endpoints that read the manager's snapshot: `/livez`, `/readyz`, `/health/mcp`.

aiohttp glue only; every answer is computed from `MCPServerManager.statuses()` at
request time, so it cannot drift from the supervisors' truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ..manager import MCPServerManager
from ..state import ServerState, ServerStatus
from .status_page import render_status_page

__all__ = ["build_app", "health_document", "serve_ops"]

MANAGER_KEY = web.AppKey("manager", MCPServerManager)


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


async def _health(request: web.Request) -> web.Response:
    return web.json_response(health_document(request.app[MANAGER_KEY].statuses()))


async def _status_page(request: web.Request) -> web.Response:
    document = health_document(request.app[MANAGER_KEY].statuses())
    return web.Response(
        text=render_status_page(document),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def build_app(manager: MCPServerManager) -> web.Application:
    app = web.Application()
    app[MANAGER_KEY] = manager
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/health/mcp", _health)
    app.router.add_get("/", _status_page)
    return app


@asynccontextmanager
async def serve_ops(manager: MCPServerManager, listen: str) -> AsyncIterator[int]:
    """Serve the ops endpoints on `host:port`; yields the bound port (useful with port 0)."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(build_app(manager), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
    try:
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
