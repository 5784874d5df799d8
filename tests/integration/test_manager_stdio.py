"""Healthy and quirky stdio servers (behaving.py): both protocol eras, garbage on stdout, slow start."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from sidecar import MCPServerManager, ServerConfig
from sidecar.events import Connected, ConnectOverdue, HealthCheckPassed, LifecycleEvent

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio


async def test_both_protocol_eras_connect_and_pass_probes(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    leak_guard: LeakGuard,
) -> None:
    manager = MCPServerManager(
        [python_server(name="modern", protocol="auto"), python_server(name="legacy", protocol="legacy")]
    )
    events = watch(manager)
    async with manager:
        modern, legacy = manager.status("modern"), manager.status("legacy")
        assert modern.active and legacy.active, (modern, legacy)
        assert modern.protocol_version == "2026-07-28"
        assert legacy.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        assert legacy.protocol_version != "2026-07-28"
        assert modern.tools == legacy.tools == ("echo", "add", "sleep", "pid")

        # Each era has its own probe (server/discover vs ping); three passes each.
        passes = {"modern": 0, "legacy": 0}

        def three_each(event: LifecycleEvent) -> bool:
            if isinstance(event, HealthCheckPassed):
                passes[event.server] += 1
            return min(passes.values()) >= 3

        await events.wait_for(three_each, timeout=3)
        assert not [e for e in events.drain() if e.kind in ("health_check_failed", "lost")]
        assert manager.status("modern").consecutive_failures == 0

        added = await manager.call_tool("legacy", "add", {"a": 2, "b": 40})
        assert added.structured_content == {"result": 42}
        connected = [e for e in events.drain() if isinstance(e, Connected)]
        assert {e.server: e.protocol_version for e in connected} == {
            "modern": "2026-07-28",
            "legacy": legacy.protocol_version,
        }
    leak_guard.assert_clean()


async def test_garbage_on_stdout_is_tolerated(
    python_server: Callable[..., ServerConfig], leak_guard: LeakGuard
) -> None:
    async with MCPServerManager([python_server("--garbage-stdout", name="noisy")]) as manager:
        assert [s.name for s in manager.active_servers] == ["noisy"], manager.statuses()
        result = await manager.call_tool("noisy", "echo", {"text": "still speaking JSON-RPC"})
        assert result.structured_content == {"result": "still speaking JSON-RPC"}
    leak_guard.assert_clean()


async def test_slow_start_within_connect_timeout_is_active(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    leak_guard: LeakGuard,
) -> None:
    manager = MCPServerManager([python_server("--slow-start", "0.7", name="slow", connect_timeout=5)])
    events = watch(manager)
    async with manager:
        # On a busy host the start may outlast the timeout; the grace then waits for it.
        connected = await events.wait_for(lambda e: isinstance(e, Connected), timeout=15)
        assert isinstance(connected, Connected)
        assert connected.duration >= 0.7  # it really did wait for the slow server
        assert manager.status("slow").active, manager.status("slow")
        kinds = [e.kind for e in events.of("slow")]
        assert kinds in (["connecting", "connected"], ["connecting", "connect_overdue", "connected"]), kinds
    leak_guard.assert_clean()


async def test_slow_start_past_the_timeout_is_not_ready_but_not_restarted(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    leak_guard: LeakGuard,
) -> None:
    """The connect timeout says "not ready"; the same process is then waited for, not killed."""
    slow = python_server("--slow-start", "1.5", name="slow", connect_timeout=0.5, connect_grace=20)
    manager = MCPServerManager([slow])
    events = watch(manager)
    async with manager:  # startup returns at the connect timeout, as before
        overdue = await events.wait_for(lambda e: isinstance(e, ConnectOverdue), timeout=5)
        assert isinstance(overdue, ConnectOverdue)
        assert (overdue.attempt, overdue.timeout, overdue.grace) == (0, 0.5, 20)
        status = manager.status("slow")
        assert not status.active and status.last_error_type == "timeout", status
        connected = await events.wait_for(lambda e: isinstance(e, Connected), timeout=25)
        assert isinstance(connected, Connected) and connected.attempt == 0
        assert connected.duration >= 1.5
        assert manager.status("slow").active
        kinds = [e.kind for e in events.of("slow")]
        assert kinds == ["connecting", "connect_overdue", "connected"], kinds  # one process, no restart
    leak_guard.assert_clean()
