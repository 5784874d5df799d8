"""HTTP servers: streamable HTTP (SSE and JSON responses) and legacy SSE, killed and restarted."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream
from support import BEHAVING, free_port

from sidecar import MCPServerManager, ServerConfig, ToolCallError
from sidecar.events import Connected, ConnectFailed, Lost

if TYPE_CHECKING:
    from conftest import EventLog, Service

pytestmark = pytest.mark.anyio

Watch = Callable[[MCPServerManager], "EventLog"]
IsEvent = Callable[..., Callable[..., bool]]
HttpServer = Callable[..., Awaitable["Service"]]

VARIANTS = [
    pytest.param("streamable-http", (), id="streamable-http-sse-responses"),
    pytest.param("streamable-http", ("--json-response",), id="streamable-http-json-responses"),
    pytest.param("sse", (), id="sse"),
]


@pytest.mark.parametrize(("transport", "flags"), VARIANTS)
async def test_http_server_connects_and_serves_calls(
    transport: str,
    flags: tuple[str, ...],
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    service = await http_server(transport, *flags)
    manager = MCPServerManager([server_config("remote", transport, url=service.url)])
    events = watch(manager)
    async with manager:
        status = manager.status("remote")
        assert status.active, status
        assert status.transport == transport
        assert status.pid is None  # not our child: nothing to report
        assert status.tools == ("echo", "add", "sleep", "pid")
        added = await manager.call_tool("remote", "add", {"a": 20, "b": 22})
        assert added.structured_content == {"result": 42}
        served_by = await manager.call_tool("remote", "pid", {})
        assert served_by.structured_content == {"result": service.pid}
        await events.wait_for(is_event("remote", "health_check_passed"), timeout=2)
        assert not [e for e in events.drain() if e.kind in ("health_check_failed", "lost")]


@pytest.mark.parametrize(("transport", "flags"), VARIANTS)
async def test_killed_http_server_is_noticed_and_reconnected_after_restart(
    transport: str,
    flags: tuple[str, ...],
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    service = await http_server(transport, *flags)
    config = server_config("remote", transport, url=service.url)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("remote").active, manager.status("remote")
        first_pid = service.pid
        mark = events.mark()
        killed = time.monotonic()
        service.kill()

        lost = await events.wait_for(is_event("remote", "lost"), timeout=5, after=mark)
        noticed = time.monotonic() - killed
        assert isinstance(lost, Lost)
        health = config.health
        # A stream that ends, a refused probe, or at worst `threshold` timed-out probes.
        bound = health.failure_threshold * (health.interval + health.timeout) + 0.5
        assert noticed < bound, (noticed, lost)
        assert lost.reason in ("transport_error", "probe_error", "probe_timeout", "closed"), lost
        assert not manager.status("remote").active
        assert [s.name for s in manager.failed_servers] == ["remote"]
        # While it is down, attempts fail (connection refused) and keep being scheduled.
        await events.wait_for(is_event("remote", "connect_failed"), timeout=3, after=mark)

        await service.start()  # same port, new process
        back_up = time.monotonic()
        connected = await events.wait_for(is_event("remote", "connected"), timeout=5, after=mark)
        took = time.monotonic() - back_up
        assert isinstance(connected, Connected)
        # The next scheduled attempt (at most max_backoff away) connects; the margin is the handshake.
        assert took < config.reconnect.max_backoff + 1.5, took
        assert service.pid != first_pid
        result = await manager.call_tool("remote", "pid", {})
        assert result.structured_content == {"result": service.pid}


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_configured_headers_are_sent(
    transport: str, server_config: Callable[..., ServerConfig]
) -> None:
    """A bare TCP listener records the first request's head, then answers 503."""
    heads: list[str] = []

    async def handle(stream: SocketStream) -> None:
        async with stream:
            data = b""
            with anyio.move_on_after(2):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
            heads.append(data.decode("latin-1"))
            await stream.send(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    config = server_config(
        "remote",
        transport,
        url=f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}",
        headers={"X-Sidecar-Test": "header-value-1", "Authorization": "Bearer header-token-2"},
        connect_timeout=2,
    )
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with MCPServerManager([config]) as manager:
            status = manager.status("remote")
        tg.cancel_scope.cancel()
    assert not status.active
    assert heads, "the sidecar never sent a request"
    lines = {line.lower() for line in heads[0].split("\r\n")}
    assert "x-sidecar-test: header-value-1" in lines, heads[0]
    assert "authorization: bearer header-token-2" in lines, heads[0]


async def test_hung_http_server_is_caught_by_the_probe_and_costs_bounded_time(
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    """Over HTTP a hung peer can block the SDK's writer; the connection must still be torn down in time."""
    service = await http_server("streamable-http", "--hang-after-calls", "1")
    interval, timeout, threshold, connect_timeout, close_budget = 0.2, 0.3, 2, 1.0, 0.5
    config = server_config(
        "remote",
        "streamable-http",
        url=service.url,
        connect_timeout=connect_timeout,
        health={"interval": interval, "timeout": timeout, "failure_threshold": threshold},
    )
    manager = MCPServerManager([config], shutdown_timeout=close_budget)
    events = watch(manager)
    async with manager:
        assert manager.status("remote").active, manager.status("remote")
        mark = events.mark()
        await manager.call_tool("remote", "echo", {"text": "last answer"})
        answered = time.monotonic()  # the next message (a probe) hangs the server's event loop

        lost = await events.wait_for(is_event("remote", "lost"), timeout=5, after=mark)
        assert isinstance(lost, Lost)
        assert lost.reason == "probe_timeout", lost
        assert time.monotonic() - answered < threshold * (interval + timeout) + 0.5
        # Closing the hung session is bounded by the close budget; the retry by the connect timeout.
        failed = await events.wait_for(is_event("remote", "connect_failed"), timeout=5, after=mark)
        assert isinstance(failed, ConnectFailed)
        assert failed.error_type == "timeout", failed
        backoff = config.reconnect.max_backoff
        assert failed.ts - lost.ts < close_budget + backoff + connect_timeout + 0.5, failed.ts - lost.ts
        leaving = time.monotonic()
    assert time.monotonic() - leaving < close_budget + 0.3 + 0.5
    assert manager.status("remote").state.value == "stopped"


@pytest.mark.parametrize(("transport", "flags"), VARIANTS)
async def test_call_pending_when_http_server_dies_fails_at_once(
    transport: str,
    flags: tuple[str, ...],
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    """Not after the call's deadline: the dead connection ends the call, and the server leaves active."""
    service = await http_server(transport, *flags)
    # Probes far apart, so that only the failing call and the transport can reveal the loss.
    config = server_config("remote", transport, url=service.url, health={"interval": 30})
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        mark = events.mark()
        outcome: list[BaseException] = []

        async def slow_call() -> None:
            try:
                await manager.call_tool("remote", "sleep", {"seconds": 10}, timeout=20)
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            # Every task waits on I/O: the request is out, the answer is awaited. Kill the server now.
            with anyio.fail_after(5):
                await anyio.wait_all_tasks_blocked()
            killed = time.monotonic()
            service.kill()
        failed_after = time.monotonic() - killed
        assert len(outcome) == 1 and isinstance(outcome[0], ToolCallError), outcome
        assert failed_after < 1.0, failed_after
        lost = await events.wait_for(is_event("remote", "lost"), timeout=1, after=mark)
        assert time.monotonic() - killed < 1.0
        assert isinstance(lost, Lost)


@pytest.mark.parametrize(
    ("protocol", "flags"),
    [
        pytest.param("legacy", (), id="initialize-era-sse-responses"),
        pytest.param("legacy", ("--json-response",), id="initialize-era-json-responses"),
        pytest.param("auto", (), id="2026-07-28"),
    ],
)
async def test_probes_pass_in_both_eras_and_both_answer_forms(
    protocol: str,
    flags: tuple[str, ...],
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    """Probes go out through the shared prober, not the SDK: ping on the session (initialize era,
    answered as SSE or JSON) or a stateless server/discover (2026-07-28)."""
    service = await http_server("streamable-http", *flags)
    health = {"interval": 0.1, "timeout": 10.0, "failure_threshold": 1}  # patient: a busy host is slow
    config = server_config("remote", "streamable-http", url=service.url, protocol=protocol, health=health)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        legacy = manager.status("remote").protocol_version != "2026-07-28"
        assert legacy == (protocol == "legacy")
        for _ in range(2):  # the second one reuses the kept-alive connection (probes start >= timeout apart)
            await events.wait_for(is_event("remote", "health_check_passed"), timeout=30, after=events.mark())
        assert not [e for e in events.drain() if e.kind in ("health_check_failed", "lost")]


async def test_a_session_the_server_forgot_is_lost_at_the_first_probe_without_an_event_stream(
    services: Callable[..., Service],
    tmp_path: Path,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    """Restarted behind its port with no GET stream to end: the probe meets a 404 for the session,
    which means "start a new one" (streamable HTTP, Session Management), not "try twice more"."""
    port, pidfile = free_port(), tmp_path / "child.pid"
    argv = [sys.executable, str(BEHAVING), "--transport", "streamable-http", "--port", str(port)]
    argv += ["--respawn", "--refuse-get-stream", "--pidfile", str(pidfile)]
    service = await services(argv, port=port).start()
    health = {"interval": 0.3, "timeout": 2.0, "failure_threshold": 3}
    config = server_config("remote", "streamable-http", url=service.url, protocol="legacy", health=health)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("remote").active
        first_child = int(pidfile.read_text())
        mark = events.mark()
        os.kill(first_child, signal.SIGKILL)
        lost = await events.wait_for(is_event("remote", "lost"), timeout=10, after=mark)
        assert isinstance(lost, Lost)
        assert lost.reason == "probe_error", lost
        assert "no longer knows the session" in (lost.error or ""), lost
        failed = [e for e in events.drain()[mark:] if e.kind == "health_check_failed" and e.ts <= lost.ts]
        assert len(failed) == 1, failed  # not the threshold's three
        connected = await events.wait_for(is_event("remote", "connected"), timeout=10, after=mark)
        assert connected.ts > lost.ts
        assert int(pidfile.read_text()) != first_child
