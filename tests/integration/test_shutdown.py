"""Shutdown is bounded and leaves no process behind, even with stopped and SIGTERM-proof servers."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from externals import in_ci, require
from support import BEHAVING, EVERYTHING_JS

from sidecar import MCPServerManager, ServerConfig, ServerState, ToolCallTimeout

if TYPE_CHECKING:
    from conftest import LeakGuard

pytestmark = pytest.mark.anyio

NO_PROBES = {"interval": 0}  # a probe would notice the frozen servers and replace them before shutdown


def _plain_servers(
    count: int, python_server: Callable[..., ServerConfig], server_config: Callable[..., ServerConfig]
) -> list[ServerConfig]:
    """Healthy servers to shut down alongside: node ones start 5x faster, Python ones if node is absent."""
    node = shutil.which("node")
    if in_ci():  # CI has node and the npm servers; a silent fallback there would hide their absence
        require(node is not None and EVERYTHING_JS.is_file(), "node and server-everything")
    if node and EVERYTHING_JS.is_file():
        return [
            server_config(f"plain-{i}", command=node, args=[str(EVERYTHING_JS), "stdio"], health=NO_PROBES)
            for i in range(count)
        ]
    return [python_server(name=f"plain-{i}", health=NO_PROBES, connect_timeout=20) for i in range(count)]


async def test_shutdown_of_eight_servers_with_frozen_and_stubborn_ones(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    wait_until: Callable[..., Awaitable[None]],
    leak_guard: LeakGuard,
) -> None:
    servers = _plain_servers(6, python_server, server_config)
    servers.append(python_server(name="stopped", health=NO_PROBES, connect_timeout=20))
    # Ignores SIGTERM and, once hung, no longer reads stdin either: only SIGKILL ends it.
    stubborn_flags = ("--ignore-sigterm", "--hang-after-calls", "1")
    servers.append(python_server(*stubborn_flags, name="stubborn", health=NO_PROBES, connect_timeout=20))
    manager = MCPServerManager(servers, shutdown_timeout=1.5)
    async with manager:
        assert len(manager.active_servers) == 8, manager.errors
        pids = {status.name: status.pid for status in manager.statuses()}
        assert all(pids.values()), pids
        stopped, stubborn = pids["stopped"], pids["stubborn"]
        assert stopped is not None and stubborn is not None

        await manager.call_tool("stubborn", "echo", {"text": "last answer"})
        with pytest.raises(ToolCallTimeout):  # this message hangs it for good
            await manager.call_tool("stubborn", "echo", {"text": "never answered"}, timeout=0.3)
        os.kill(stopped, signal.SIGSTOP)
        await wait_until(lambda: leak_guard.state(stopped) == "T", timeout=2, what="SIGSTOP took effect")
        assert manager.status("stopped").active and manager.status("stubborn").active
        leaving = time.monotonic()
    took = time.monotonic() - leaving

    assert took < 2.0, f"__aexit__ took {took:.2f}s"
    for name, pid in pids.items():
        assert pid is not None
        assert leak_guard.state(pid) is None, f"{name} (pid {pid}) is still in the process table"
    assert all(status.state is ServerState.STOPPED for status in manager.statuses())
    leak_guard.assert_clean()


async def test_grandchildren_go_with_their_server(
    server_config: Callable[..., ServerConfig],
    wait_until: Callable[..., Awaitable[None]],
    leak_guard: LeakGuard,
) -> None:
    """A wrapper script that leaves a helper process running: the whole process group is killed."""
    # `sleep` stands for a helper a real server starts (a language server, a browser ...).
    wrapper = 'sleep 300 & exec "$0" "$@"'
    config = server_config("wrapped", command="sh", args=["-c", wrapper, sys.executable, str(BEHAVING)])
    async with MCPServerManager([config]) as manager:
        status = manager.status("wrapped")
        assert status.active, status
        assert status.pid is not None
        helpers = [pid for pid in leak_guard.members_of_group(status.pid) if pid != status.pid]
        assert len(helpers) == 1, helpers  # the sleep, in the server's process group
    # SIGKILL is sent to the group on close; dying takes the kernel a moment.
    await wait_until(lambda: not leak_guard.alive(helpers[0]), timeout=0.5, what="helper killed")
    leak_guard.assert_clean()
