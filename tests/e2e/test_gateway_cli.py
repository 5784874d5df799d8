"""The gateway in `mcp-sidecar run`: an agent connects once, with a token and its trace context;
the ops endpoints and the traces show what the gateway did; SIGTERM stops it all in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from otlp import KIND_CLIENT, http_receiver

from .harness import CLI, Sidecars, free_port, health, stdio_server, wait_for, write_config
from .test_ops import scrape

pytestmark = pytest.mark.anyio

TOKEN = "gateway-e2e-token-7c1f0a93"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
KIND_SERVER = 2  # Span.SpanKind.SPAN_KIND_SERVER


async def until(predicate: Callable[[], object], timeout: float, what: str) -> Any:
    """`wait_for` in a worker thread: the collector and the client in this loop keep running."""
    return await anyio.to_thread.run_sync(lambda: wait_for(predicate, timeout, what))


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
        return response.read().decode()


async def test_an_agent_connects_once_and_the_sidecar_shows_what_happened(
    tmp_path: Path, sidecars: Sidecars
) -> None:
    ops, gateway = free_port(), free_port()
    beta_pid = tmp_path / "beta.pid"
    servers = stdio_server("alpha", tmp_path / "alpha.pid") + stdio_server("beta", beta_pid)
    extra = f"  gateway: {{listen: 127.0.0.1:{gateway}, token_env: GATEWAY_E2E_TOKEN}}\n"
    config = write_config(tmp_path, ops, servers, extra)
    told: list[Any] = []

    async def heard(message: Any) -> None:
        told.append(message)

    async with http_receiver() as collector:
        sidecar = sidecars(config, env=os.environ | collector.env() | {"GATEWAY_E2E_TOKEN": TOKEN})
        await until(lambda: (doc := health(ops)) and doc["active_count"] == 2, 30, "both servers active")
        headers = {"Authorization": f"Bearer {TOKEN}", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
        url = f"http://127.0.0.1:{gateway}/mcp"
        transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers))
        async with Client(transport, mode="legacy", message_handler=heard) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
            assert tools == [
                f"{server}__{tool}"
                for server in ("alpha", "beta")
                for tool in ("echo", "add", "sleep", "pid")
            ]
            echoed = await client.call_tool("alpha__echo", {"text": "through the gateway"})
            assert echoed.structured_content == {"result": "through the gateway"}

            document = await anyio.to_thread.run_sync(health, ops)
            assert document is not None
            shown = document["gateway"]
            assert shown["sessions"] == {"legacy": 1, "2026-07-28": 0}
            assert shown["servers"]["alpha"]["tools"] == 4
            assert shown["servers"]["beta"]["tool_names"] == [
                "beta__echo",
                "beta__add",
                "beta__sleep",
                "beta__pid",
            ]
            assert shown["collisions"] == []
            assert 'id="gateway"' in await anyio.to_thread.run_sync(page, ops)
            scraped = await anyio.to_thread.run_sync(scrape, ops)
            assert scraped is not None
            assert scraped.value("mcp_gateway_sessions", era="legacy") == 1
            assert scraped.value("mcp_gateway_tools_exposed", server="beta") == 4
            assert scraped.value("mcp_tool_calls_total", server="alpha", tool="echo") == 1
            # The gateway's side of the MCP conventions: the call it answered, by exposed name.
            answered = [
                value
                for (name, labels), value in scraped.samples.items()
                if name == "mcp_server_operation_duration_seconds_count"
                and ("mcp_method_name", "tools/call") in labels
                and ("gen_ai_tool_name", "alpha__echo") in labels
            ]
            assert answered == [1]

            os.kill(int(beta_pid.read_text()), signal.SIGKILL)
            await until(
                lambda: any(isinstance(m, types.ToolListChangedNotification) for m in told), 15, "told"
            )
            assert not [
                name
                for name in [t.name for t in (await client.list_tools()).tools]
                if name.startswith("beta")
            ]
            down = await client.call_tool("beta__echo", {"text": "x"})
            assert down.is_error and "'beta'" in down.content[0].text  # type: ignore[union-attr]

        # The session the client just closed was recorded when it ended.
        ended = await anyio.to_thread.run_sync(scrape, ops)
        assert ended is not None
        sessions = [
            value
            for (name, labels), value in ended.samples.items()
            if name == "mcp_server_session_duration_seconds_count"
            and ("mcp_protocol_version", "2025-11-25") in labels
        ]
        assert sessions == [1]

        # The caller's trace goes on through the gateway: its SERVER span (the SDK's, not dropped
        # as noise) is the child of the caller's span, and the sidecar's CLIENT span its child.
        served = await collector.wait_for(lambda s: s.name == "tools/call alpha__echo", 10)
        assert (served.kind, served.trace_id, served.parent_span_id) == (KIND_SERVER, TRACE_ID, CALLER_SPAN)
        forwarded = await collector.wait_for(
            lambda s: s.name == "tools/call echo" and s.kind == KIND_CLIENT, 10
        )
        assert (forwarded.trace_id, forwarded.parent_span_id) == (TRACE_ID, served.span_id)
        assert forwarded.attributes["mcp_sidecar.server"] == "alpha"
        started = time.monotonic()
        logs = await anyio.to_thread.run_sync(sidecar.stop)
        # 8 s as in test_chaos: a crowded host has stretched this exit to 4.4 s; a hang takes forever.
        assert time.monotonic() - started < 8, "SIGTERM took too long with the gateway running"
    assert sidecar.returncode == 0
    assert TOKEN not in logs
    assert not any(TOKEN.encode() in body for body in collector.bodies)


def test_a_taken_gateway_port_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pidfile = tmp_path / "never.pid"
        extra = f"  gateway: {{listen: 127.0.0.1:{port}}}\n"
        config = write_config(tmp_path, free_port(), stdio_server("ok", pidfile), extra)
        result = subprocess.run([*CLI, "run", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mcp-sidecar: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert not pidfile.exists()
