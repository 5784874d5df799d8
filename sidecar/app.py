"""Wiring: the gateway next to the manager and the ops server, as `mcp-sidecar run` starts them.

Everything the gateway needs (uvicorn, starlette, the SDK's server side) is imported only
here, when a gateway is actually built: `check`, `status` and the library never pay for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .config import SidecarConfig
from .manager import MCPServerManager

if TYPE_CHECKING:
    from .gateway import Gateway
    from .telemetry.metrics import SidecarMetrics

__all__ = ["GatewayCollector", "build_gateway", "serve_gateway"]

log = logging.getLogger("sidecar.gateway")


def build_gateway(
    manager: MCPServerManager, config: SidecarConfig, metrics: SidecarMetrics | None = None
) -> Gateway | None:
    """The gateway over `manager` (before entering it: servers connect with its hooks), or None
    when `sidecar.gateway.enabled` is false. With `metrics`, its series are registered there and
    every request it answers and every session it ends are recorded (the MCP conventions)."""
    if not config.sidecar.gateway.enabled:
        return None
    from .gateway import Gateway

    gateway = Gateway(manager, config.sidecar.gateway, metrics)
    if metrics is not None:
        metrics.register(GatewayCollector(gateway))
    return gateway


@asynccontextmanager
async def serve_gateway(gateway: Gateway | None, config: SidecarConfig) -> AsyncIterator[int | None]:
    """Serve `gateway` (follow changes, answer over HTTP) while the block runs; yields its port.

    Raises `GatewayListenError` (an OSError naming the address) when the port is taken.
    """
    if gateway is None:
        yield None
        return
    from .web.gateway_http import serve_gateway_http

    settings = config.sidecar.gateway
    token = os.environ.get(settings.token_env) if settings.token_env else None
    if settings.token_env and not token:
        log.warning(
            "gateway.token_env names %s, which is empty: the gateway accepts any caller", settings.token_env
        )
    # The endpoint first: a taken port fails here, as a plain OSError, before any task starts.
    async with serve_gateway_http(gateway, settings, token or None) as port, anyio.create_task_group() as tg:
        await tg.start(gateway.run)
        yield port
        tg.cancel_scope.cancel()


class GatewayCollector:
    """The gateway's Prometheus series, read from the gateway on each scrape."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sessions = GaugeMetricFamily(
            "mcp_gateway_sessions", "Gateway clients connected now, by protocol era.", labels=["era"]
        )
        for era, count in self._gateway.sessions().items():
            sessions.add_metric([era], count)
        exposed = GaugeMetricFamily(
            "mcp_gateway_tools_exposed", "Tools the gateway offers now, by owning server.", labels=["server"]
        )
        for server, counts in self._gateway.catalog().exposed_counts().items():
            exposed.add_metric([server], counts["tools"])
        sent = CounterMetricFamily(
            "mcp_gateway_list_changed_sent", "list_changed notifications and listen events sent to clients."
        )
        sent.add_metric([], self._gateway.list_changed_sent)
        return [sessions, exposed, sent]
