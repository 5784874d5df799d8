"""Healthy and quirky stdio servers (behaving.py): both protocol eras, garbage on stdout, slow start."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from sidecar import MCPServerManager, ServerConfig
from sidecar.events import Connected, HealthCheckPassed, LifecycleEvent

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
        assert manager.active_servers == ["noisy"], manager.statuses()
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
        assert manager.status("slow").active, manager.status("slow")
        connected = await events.wait_for(lambda e: isinstance(e, Connected), timeout=1)
        assert isinstance(connected, Connected)
        assert connected.duration >= 0.7  # it really did wait for the slow server
        kinds = [e.kind for e in events.of("slow")]
        assert kinds == ["connecting", "connected"], kinds  # no failed attempt on the way
    leak_guard.assert_clean()
