"""A bug of ours is not a server failure: it is reported as ours, counted, and never loops silently.

The bugs are injected by patching one of our own functions to raise; the servers are real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from sidecar import MCPServerManager, ServerConfig, ServerState
from sidecar import supervisor as supervisor_module
from sidecar.connection import Connection
from sidecar.events import ConnectFailed, InternalError, Lost
from sidecar.telemetry.metrics import SidecarMetrics

if TYPE_CHECKING:
    from conftest import EventLog, IsEvent, LeakGuard

pytestmark = pytest.mark.anyio


def _internal_errors(metrics: SidecarMetrics) -> float:
    for line in metrics.render()[0].decode().splitlines():
        if line.startswith("mcp_sidecar_internal_errors_total "):
            return float(line.split()[1])
    raise AssertionError("mcp_sidecar_internal_errors_total is missing")


async def test_a_bug_while_connecting_is_ours_and_the_server_recovers(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: IsEvent,
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    real_refresh = Connection.refresh_tools
    calls = 0

    async def buggy_once(self: Connection) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug of ours")
        return await real_refresh(self)

    monkeypatch.setattr(Connection, "refresh_tools", buggy_once)
    manager = MCPServerManager(
        [python_server(name="s", reconnect={"initial_backoff": 0.05, "max_backoff": 0.1})]
    )
    metrics = SidecarMetrics(manager.statuses)
    events = watch(manager)
    async with manager:
        bug = await events.wait_for(is_event("s", "internal_error"), timeout=10)
        assert isinstance(bug, InternalError)
        assert "KeyError" in bug.error and "a bug of ours" in bug.error
        assert "Traceback" in bug.traceback and "buggy_once" in bug.traceback
        failed = await events.wait_for(is_event("s", "connect_failed"), timeout=5)
        assert isinstance(failed, ConnectFailed) and failed.error_type == "internal_error", failed
        await events.wait_for(is_event("s", "connected"), timeout=10)  # the next attempt works
        assert manager.status("s").active
        for event in events.drain():
            metrics.observe(event)
        assert _internal_errors(metrics) == 1
    leak_guard.assert_clean()


async def test_a_bug_under_a_live_session_is_a_loss_of_its_own_kind(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: IsEvent,
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    fast = {"initial_backoff": 0.05, "max_backoff": 0.1}
    manager = MCPServerManager([python_server(name="s", health={"interval": 0.1}, reconnect=fast)])
    events = watch(manager)
    async with manager:
        assert manager.status("s").active

        def broken_judge(*args: Any) -> Any:
            raise AttributeError("a bug in judging")

        monkeypatch.setattr(supervisor_module, "judge", broken_judge)
        lost = await events.wait_for(is_event("s", "lost"), timeout=10)
        assert isinstance(lost, Lost) and lost.reason == "internal_error", lost
        assert "AttributeError" in lost.error
        monkeypatch.undo()
        await events.wait_for(is_event("s", "connected"), timeout=10)
    leak_guard.assert_clean()


async def test_a_bug_in_the_lifecycle_stops_the_server_visibly_until_revived(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: IsEvent,
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    def broken_decide(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug in deciding")

    monkeypatch.setattr(supervisor_module, "decide", broken_decide)
    manager = MCPServerManager(
        [
            server_config("ghost", command="definitely-not-an-mcp-server-7f3a"),
            python_server(name="fine"),
        ]
    )
    events = watch(manager)
    async with manager:
        bug = await events.wait_for(is_event("ghost", "internal_error"), timeout=10)
        assert isinstance(bug, InternalError) and "a bug in deciding" in bug.error
        status = manager.status("ghost")
        assert status.state is ServerState.FAILED and status.last_error_type == "internal_error", status
        # No silent loop: nothing more happens to it until someone asks.
        quiet = await events.collect(0.5)
        assert not [e for e in quiet if e.server == "ghost"], quiet
        assert manager.status("fine").active  # the others are untouched
        monkeypatch.undo()
        with anyio.fail_after(10):
            await manager.reconnect(["ghost"])
        assert manager.status("ghost").last_error_type == "spawn_error"  # the server's own failure again
    leak_guard.assert_clean()
