"""Misbehaving stdio servers: crashes, hangs, missing commands, kills. Each is noticed and survived."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from support import BEHAVING

from sidecar import MCPServerManager, ServerConfig, ServerState, ToolCallError
from sidecar.events import Connected, ConnectFailed, HealthCheckFailed, Lost, ToolCalled

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

Watch = Callable[[MCPServerManager], "EventLog"]
IsEvent = Callable[..., Callable[..., bool]]


async def test_crash_at_start_reports_exit_code_and_stderr(
    python_server: Callable[..., ServerConfig], leak_guard: LeakGuard
) -> None:
    async with MCPServerManager([python_server("--crash-at-start", name="crashy")]) as manager:
        status = manager.status("crashy")
        assert not status.active
        assert status.state is ServerState.RECONNECTING, status
        assert status.last_error_type == "exited"
        assert status.last_error is not None
        assert "exited with code 1" in status.last_error
        assert "ModuleNotFoundError" in status.last_error  # the last stderr line, not "Connection closed"
        assert [s.name for s in manager.failed_servers] == ["crashy"]
        assert {name: str(error) for name, error in manager.errors.items()} == {"crashy": status.last_error}
    leak_guard.assert_clean()


async def test_hang_at_initialize_fails_at_its_connect_timeout_only(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    connect_timeout, grace = 1.0, 1.0
    manager = MCPServerManager(
        [
            python_server(
                "--hang-at-initialize", name="hung", connect_timeout=connect_timeout, connect_grace=grace
            ),
            python_server(name="fine"),
        ]
    )
    events = watch(manager)
    started = time.time()
    async with manager:
        # Not ready at the connect timeout; the attempt goes on through its grace, then ends.
        overdue = await events.wait_for(is_event("hung", "connect_overdue"), timeout=connect_timeout + 1)
        assert overdue.ts - started < connect_timeout + 0.5, overdue.ts - started
        assert manager.status("hung").state is ServerState.RECONNECTING
        assert manager.status("hung").last_error_type == "timeout"
        deadline = connect_timeout + grace + 1
        failed = await events.wait_for(is_event("hung", "connect_failed"), timeout=deadline)
        assert isinstance(failed, ConnectFailed)
        assert failed.error_type == "timeout"
        assert connect_timeout + grace <= failed.duration < connect_timeout + grace + 0.5, failed
        assert manager.status("hung").state is ServerState.RECONNECTING

        # The healthy one is up and answers promptly while "hung" keeps hanging on retries.
        assert manager.status("fine").active, manager.status("fine")
        await events.wait_for(is_event("hung", "reconnect_attempt"), timeout=2)
        call_started = time.monotonic()
        result = await manager.call_tool("fine", "echo", {"text": "unaffected"})
        assert time.monotonic() - call_started < 0.5
        assert result.structured_content == {"result": "unaffected"}
        assert not [e for e in events.drain() if e.server == "fine" and e.kind in ("lost", "connect_failed")]
    leak_guard.assert_clean()


async def test_command_not_found_is_a_spawn_error(
    server_config: Callable[..., ServerConfig], leak_guard: LeakGuard
) -> None:
    config = server_config("ghost", command="definitely-not-an-mcp-server-7f3a", args=["--stdio"])
    async with MCPServerManager([config]) as manager:
        status = manager.status("ghost")
        assert status.state is ServerState.RECONNECTING, status
        assert status.last_error_type == "spawn_error"
        assert status.last_error is not None
        assert "command not found" in status.last_error
        assert "definitely-not-an-mcp-server-7f3a" in status.last_error
    leak_guard.assert_clean()


async def test_crash_after_calls_reconnects_by_itself(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    manager = MCPServerManager([python_server("--crash-after-calls", "1", name="fragile")])
    events = watch(manager)
    async with manager:
        first_pid = manager.status("fragile").pid
        assert first_pid is not None
        ok = await manager.call_tool("fragile", "echo", {"text": "one"})
        assert ok.structured_content == {"result": "one"}

        mark = events.mark()
        with pytest.raises(ToolCallError) as raised:
            await manager.call_tool("fragile", "echo", {"text": "two"})  # the server dies on this one
        assert raised.value.server == "fragile"

        lost = await events.wait_for(is_event("fragile", "lost"), timeout=2, after=mark)
        assert isinstance(lost, Lost)
        assert lost.reason == "exited"
        assert "exited with code 1" in lost.error
        assert "crashing on tool call 2" in lost.error
        # No call from us from here on: the supervisor brings it back on its own.
        connected = await events.wait_for(is_event("fragile", "connected"), timeout=15, after=mark)
        assert isinstance(connected, Connected)
        status = manager.status("fragile")
        assert status.active, status
        assert status.pid not in (None, first_pid)
        assert status.reconnect_attempts == 1
        kinds = [e.kind for e in events.of("fragile")]
        # Two calls (the second one failed), then the server's way back with nobody asking.
        expected = [
            "tool_called",
            "tool_called",
            "lost",
            "reconnect_scheduled",
            "reconnect_attempt",
            "connected",
        ]
        assert kinds[2:] == expected, kinds
        calls = [e for e in events.of("fragile") if isinstance(e, ToolCalled)]
        assert [(c.tool, c.error_type) for c in calls] == [("echo", None), ("echo", "closed")]
        again = await manager.call_tool("fragile", "echo", {"text": "three"})
        assert again.structured_content == {"result": "three"}
    leak_guard.assert_clean()


async def test_hang_after_calls_is_caught_by_the_probe(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    interval, timeout, threshold = 0.2, 0.3, 2
    config = python_server(
        "--hang-after-calls",
        "1",
        name="stuck",
        health={"interval": interval, "timeout": timeout, "failure_threshold": threshold},
    )
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        first_pid = manager.status("stuck").pid
        mark = events.mark()
        await manager.call_tool("stuck", "echo", {"text": "last answer"})
        answered = time.monotonic()  # the next message of any kind (a probe) hangs the server

        lost = await events.wait_for(is_event("stuck", "lost"), timeout=5, after=mark)
        detected = time.monotonic() - answered
        assert isinstance(lost, Lost)
        assert lost.reason == "probe_timeout"
        # Worst case: each of `threshold` probes waits `interval`, then `timeout`.
        assert detected < threshold * (interval + timeout) + 0.5, detected
        failures = [e for e in events.drain()[mark:] if isinstance(e, HealthCheckFailed)]
        assert [e.consecutive_failures for e in failures] == list(range(1, threshold + 1))
        assert all(e.error_type == "probe_timeout" for e in failures)

        await events.wait_for(is_event("stuck", "connected"), timeout=15, after=mark)
        status = manager.status("stuck")
        assert status.active and status.pid not in (None, first_pid), status
        assert first_pid is not None
        assert leak_guard.state(first_pid) is None  # the hung process was killed and reaped
    leak_guard.assert_clean()


async def test_sigkill_is_noticed_at_once_and_repaired(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    manager = MCPServerManager([python_server(name="victim")])
    events = watch(manager)
    async with manager:
        pid = manager.status("victim").pid
        assert pid is not None
        mark = events.mark()
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        lost = await events.wait_for(is_event("victim", "lost"), timeout=2, after=mark)
        noticed = time.monotonic() - killed
        status = manager.status("victim")
        assert noticed < 0.5, noticed  # EOF on stdout, not a probe (benchmarks measure the real number)
        assert isinstance(lost, Lost)
        assert lost.reason == "exited"
        assert "killed by signal SIGKILL" in lost.error
        assert status.state is ServerState.RECONNECTING, status
        assert status.last_error is not None and "killed by signal SIGKILL" in status.last_error
        assert status.pid is None

        await events.wait_for(is_event("victim", "connected"), timeout=15, after=mark)
        status = manager.status("victim")
        assert status.active and status.pid not in (None, pid), status
        result = await manager.call_tool("victim", "pid", {})
        assert result.structured_content == {"result": status.pid}
    leak_guard.assert_clean()


async def test_sigkill_is_noticed_even_when_a_helper_holds_stdout(
    server_config: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    # Default-like probe timing, so that only the death itself can be what is noticed.
    config = server_config(
        "wrapped",
        command="sh",
        args=["-c", 'sleep 300 & exec "$0" "$@"', sys.executable, str(BEHAVING)],
        health={"interval": 5, "timeout": 2, "failure_threshold": 3},
    )
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        pid = manager.status("wrapped").pid
        assert pid is not None
        mark = events.mark()
        os.kill(pid, signal.SIGKILL)  # the server; its `sleep` helper keeps the stdout pipe open
        lost = await events.wait_for(is_event("wrapped", "lost"), timeout=1, after=mark)
        assert isinstance(lost, Lost) and "SIGKILL" in lost.error
    leak_guard.assert_clean()


async def test_a_hung_start_gives_its_connect_slot_up_when_overdue(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    """One handshake at a time: the hung server holds the place only until its timeout, and the
    wait for a place does not count against the next server's own connect timeout."""
    manager = MCPServerManager(
        [
            python_server("--hang-at-initialize", name="hung", connect_timeout=1.0, connect_grace=30),
            python_server(name="fine", connect_timeout=1.0),
        ],
        max_concurrent_connects=1,
    )
    events = watch(manager)
    async with manager:
        await events.wait_for(is_event("hung", "connect_overdue"), timeout=10)
        connected = await events.wait_for(is_event("fine", "connected"), timeout=30)
        assert manager.status("fine").active
        assert manager.status("hung").state is ServerState.RECONNECTING  # still in its grace
        assert not [e for e in events.drain() if e.server == "fine" and e.kind == "connect_failed"]
        assert connected.ts >= min(e.ts for e in events.drain() if e.kind == "connect_overdue")
    leak_guard.assert_clean()
