"""The library API on real processes: lists, errors, drop, reconnect, give-up policies, strict mode."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import BEHAVING

from sidecar import (
    MCPServerManager,
    ServerConfig,
    ServerFailure,
    ServerState,
    ServerUnavailable,
    StartupError,
    parse_config,
)
from sidecar.events import Dropped, GaveUp

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

Watch = Callable[[MCPServerManager], "EventLog"]
IsEvent = Callable[..., Callable[..., bool]]


async def _unavailable_at_once(manager: MCPServerManager, server: str) -> ServerUnavailable:
    started = time.monotonic()
    with pytest.raises(ServerUnavailable) as raised:
        await manager.call_tool(server, "echo", {"text": "anyone there?"})
    assert time.monotonic() - started < 0.05
    assert raised.value.server == server
    return raised.value


async def test_lists_errors_and_unavailable_servers(
    python_server: Callable[..., ServerConfig],
    wait_until: Callable[..., Awaitable[None]],
    leak_guard: LeakGuard,
) -> None:
    servers = [
        python_server(name="ok"),
        python_server("--crash-at-start", name="broken"),
        python_server("--hang-at-initialize", name="hung", connect_timeout=30),
    ]
    # startup_timeout: do not wait for "hung", which stays inside its first connect attempt.
    async with MCPServerManager(servers, startup_timeout=0.2) as manager:
        await wait_until(lambda: manager.status("ok").active, timeout=10, what="ok active")
        assert [s.name for s in manager.all_servers] == ["ok", "broken", "hung"]
        assert [s.name for s in manager.active_servers] == ["ok"]
        assert manager.status("hung").state is ServerState.CONNECTING
        assert [s.name for s in manager.failed_servers] == ["broken"]
        assert manager.dropped_servers == []
        assert list(manager.errors) == ["broken"]
        assert "ModuleNotFoundError" in str(manager.errors["broken"])
        assert manager.statuses() == manager.all_servers

        # Down, connecting, unknown: each refused at once, never after a wait.
        assert "reconnecting" in str(await _unavailable_at_once(manager, "broken"))
        assert "connecting" in str(await _unavailable_at_once(manager, "hung"))
        assert "no such server" in str(await _unavailable_at_once(manager, "nobody"))
        result = await manager.call_tool("ok", "echo", {"text": "here"})
        assert result.structured_content == {"result": "here"}
    leak_guard.assert_clean()


def _ok_and_late(
    python_server: Callable[..., ServerConfig], server_config: Callable[..., ServerConfig], script: Path
) -> list[ServerConfig]:
    """`ok`, and `late`, which runs `script`: missing until the test creates it (python exits with 2)."""
    return [
        python_server(name="ok"),
        server_config("late", command=sys.executable, args=[str(script)], reconnect={"max_backoff": 0.2}),
    ]


async def test_drop_stops_retries_and_reconnect_revives(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
    tmp_path: Path,
    leak_guard: LeakGuard,
) -> None:
    script = tmp_path / "late.py"
    manager = MCPServerManager(_ok_and_late(python_server, server_config, script))
    events = watch(manager)
    async with manager:
        assert [s.name for s in manager.failed_servers] == ["late"]
        assert "exited with code 2" in str(manager.errors["late"])
        # It is retrying, so the quiet window below could catch a retry if drop did not work.
        await events.wait_for(is_event("late", "reconnect_attempt"), timeout=2)

        assert await manager.drop_failed_servers() == ["late"]
        assert [s.name for s in manager.dropped_servers] == ["late"]
        assert manager.failed_servers == []
        assert [s.name for s in manager.active_servers] == ["ok"]
        assert "late" in manager.errors  # dropped servers keep their reason
        dropped = await events.wait_for(is_event("late", "dropped"), timeout=1)
        assert isinstance(dropped, Dropped) and dropped.reason == "manual"

        quiet = await events.collect(0.8)  # backoff <= 0.2 s: several attempts would fit in here
        assert not [e for e in quiet if e.server == "late"], quiet
        assert "dropped" in str(await _unavailable_at_once(manager, "late"))

        script.symlink_to(BEHAVING)  # now it can connect
        await manager.reconnect(["late"])
        status = manager.status("late")
        assert status.active, status
        assert manager.dropped_servers == []
        assert "late" not in manager.errors
        result = await manager.call_tool("late", "echo", {"text": "revived"})
        assert result.structured_content == {"result": "revived"}
    leak_guard.assert_clean()


async def test_give_up_drops_or_keeps_per_policy(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent, leak_guard: LeakGuard
) -> None:
    reconnect = {"initial_backoff": 0.05, "max_backoff": 0.1, "max_attempts": 2}
    servers = [
        python_server("--crash-at-start", name="dropper", reconnect={**reconnect, "on_give_up": "drop"}),
        python_server("--crash-at-start", name="keeper", reconnect={**reconnect, "on_give_up": "keep"}),
    ]
    manager = MCPServerManager(servers)
    events = watch(manager)
    async with manager:
        for name in ("dropper", "keeper"):
            gave_up = await events.wait_for(is_event(name, "gave_up"), timeout=5)
            assert isinstance(gave_up, GaveUp)
            assert gave_up.attempts == 2
            assert gave_up.error is not None and "ModuleNotFoundError" in gave_up.error
        policy_drop = await events.wait_for(is_event("dropper", "dropped"), timeout=1)
        assert isinstance(policy_drop, Dropped) and policy_drop.reason == "policy"

        quiet = await events.collect(0.5)  # nobody retries after giving up
        assert not [e for e in quiet if e.kind in ("reconnect_attempt", "connecting")], quiet
        assert manager.status("dropper").state is ServerState.DROPPED
        assert manager.status("keeper").state is ServerState.FAILED
        assert [s.name for s in manager.dropped_servers] == ["dropper"]
        assert [s.name for s in manager.failed_servers] == ["keeper"]
        assert set(manager.errors) == {"dropper", "keeper"}
        for name in ("dropper", "keeper"):
            assert manager.status(name).reconnect_attempts == 2
            kinds = [e.kind for e in events.of(name)]
            assert kinds.count("reconnect_attempt") == 2, kinds
    leak_guard.assert_clean()


async def test_strict_with_failing_critical_server_raises_and_leaves_nothing(
    python_server: Callable[..., ServerConfig], leak_guard: LeakGuard
) -> None:
    servers = [
        python_server("--crash-at-start", name="vital", criticality="critical"),
        python_server(name="extra"),  # comes up, and must be torn down again
    ]
    with pytest.raises(StartupError) as raised:
        async with MCPServerManager(servers, strict=True):
            pytest.fail("a strict manager must not start without its critical servers")
    assert set(raised.value.failures) == {"vital"}
    assert "exited with code 1" in raised.value.failures["vital"]
    assert len(leak_guard.seen) >= 2, "both servers should have been spawned"
    leak_guard.assert_clean()


async def test_strict_with_failing_optional_server_starts(leak_guard: LeakGuard) -> None:
    config = parse_config(
        f"""
sidecar: {{strict: true}}
defaults:
  reconnect: {{initial_backoff: 100ms, max_backoff: 300ms}}
servers:
  - name: vital
    transport: stdio
    command: {sys.executable}
    args: [{BEHAVING}]
    criticality: critical
  - name: nice-to-have
    transport: stdio
    command: {sys.executable}
    args: [{BEHAVING}, --crash-at-start]
""",
        "test",
    )
    async with MCPServerManager(config) as manager:
        assert manager.strict
        assert [s.name for s in manager.active_servers] == ["vital"]
        assert [s.name for s in manager.failed_servers] == ["nice-to-have"]
    leak_guard.assert_clean()


async def test_the_seed_idioms_work_as_written(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
    tmp_path: Path,
    leak_guard: LeakGuard,
) -> None:
    """Lists of objects with `.name`, `errors` as exceptions, a drop that needs no await."""
    script = tmp_path / "late.py"
    manager = MCPServerManager(_ok_and_late(python_server, server_config, script))
    events = watch(manager)
    async with manager:
        assert [s.name for s in manager.active_servers] == ["ok"]
        assert {s.name for s in manager.active_servers} == {"ok"}
        assert [s.name for s in manager.all_servers] == ["ok", "late"]
        (late,) = manager.failed_servers
        assert late.name == "late" and late.state is ServerState.RECONNECTING
        error = manager.errors["late"]
        assert isinstance(error, ServerFailure)
        assert str(error) == late.last_error and "exited with code 2" in str(error)
        assert (error.server, error.state, error.error_type) == ("late", "reconnecting", "exited")
        await events.wait_for(is_event("late", "reconnect_attempt"), timeout=2)

        mark = events.mark()
        dropping = manager.drop_failed_servers()  # no await, as the seed calls it
        assert dropping == ["late"]
        assert manager.failed_servers == []  # at once: nothing ran in between
        assert [s.name for s in manager.dropped_servers] == ["late"]
        assert manager.errors["late"].state == "dropped"
        assert "dropped" in str(await _unavailable_at_once(manager, "late"))

        quiet = await events.collect(0.8)  # backoff <= 0.2 s: retries would show up here
        late_events = [e.kind for e in events.events[mark:] if e.server == "late"]
        assert late_events == ["dropped"], (late_events, quiet)
        assert await dropping == ["late"]  # awaiting it later is harmless

        script.symlink_to(BEHAVING)  # now it can connect
        active = await manager.reconnect(failed_only=True)
        assert {s.name for s in active} == {"ok", "late"}
        assert manager.errors == {}
    leak_guard.assert_clean()


async def test_a_drop_abandons_the_attempt_in_flight(
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
    tmp_path: Path,
    leak_guard: LeakGuard,
    wait_until: Callable[..., Awaitable[None]],
) -> None:
    """Dropped while a reconnect attempt is waiting for `initialize`: dropped at once, the
    child is killed by the server's own task, and no late failure or success follows."""
    script, pidfile = tmp_path / "hanger.py", tmp_path / "hanger.pid"  # script missing: exit 2
    server = server_config(
        "hanger",
        command=sys.executable,
        args=[str(script), "--hang-at-initialize", "--pidfile", str(pidfile)],
        connect_timeout=60,
        reconnect={"initial_backoff": 0.05, "max_backoff": 0.1},
    )
    manager = MCPServerManager([server])
    events = watch(manager)
    async with manager:
        assert manager.status("hanger").state is ServerState.RECONNECTING
        script.symlink_to(BEHAVING)  # the next attempt spawns a server that never answers
        mark = events.mark()
        await events.wait_for(is_event("hanger", "reconnect_attempt"), timeout=5, after=mark)
        await wait_until(
            lambda: pidfile.exists() and bool(pidfile.read_text().strip()), 15, "the hanging server started"
        )
        child = int(pidfile.read_text())
        assert leak_guard.alive(child)

        mark = events.mark()
        assert manager.drop(["hanger"]) == ["hanger"]
        assert manager.status("hanger").state is ServerState.DROPPED
        # far below the 60 s connect timeout
        await wait_until(lambda: not leak_guard.alive(child), 5, "the abandoned attempt's process ended")
        await events.collect(0.5)
        kinds = [e.kind for e in events.events[mark:] if e.server == "hanger"]
        assert kinds == ["dropped"], kinds
        assert manager.status("hanger").state is ServerState.DROPPED
    leak_guard.assert_clean()
