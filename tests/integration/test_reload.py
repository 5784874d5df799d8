"""`MCPServerManager.apply()` (what reload runs) under concurrency: never an orphaned server."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import pytest
from support import live_children

from sidecar import MCPServerManager, ServerConfig

if TYPE_CHECKING:
    from conftest import LeakGuard

pytestmark = pytest.mark.anyio


async def test_concurrent_reloads_leave_one_process_per_server(
    python_server: Callable[..., ServerConfig],
    wait_until: Callable[..., Awaitable[None]],
    leak_guard: LeakGuard,
) -> None:
    before = [python_server(name="alpha"), python_server(name="beta")]
    changed = [python_server("--extra-tools", "1", name="alpha"), before[1]]  # alpha's config changed
    async with MCPServerManager(before) as manager:
        await wait_until(lambda: len(manager.active_servers) == 2, timeout=30, what="both active")
        old = {s.name: s.pid for s in manager.all_servers}
        assert sorted(old.values()) == live_children(os.getpid())

        results: list[dict[str, list[str]]] = []

        async def reload() -> None:
            results.append(await manager.apply(changed))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(reload)

        # One of them restarted alpha; the others, serialised behind it, found nothing to do.
        assert sorted(results, key=lambda r: r["restarted"]) == [
            {"added": [], "removed": [], "restarted": []},
            {"added": [], "removed": [], "restarted": []},
            {"added": [], "removed": [], "restarted": []},
            {"added": [], "removed": [], "restarted": ["alpha"]},
        ]
        assert [s.name for s in manager.all_servers] == ["alpha", "beta"]
        await wait_until(
            lambda: len(manager.active_servers) == 2 and manager.status("alpha").tools[-1:] == ("tool_0",),
            timeout=30,
            what="the new alpha active",
        )
        now = {s.name: s.pid for s in manager.all_servers}
        assert now["beta"] == old["beta"] and now["alpha"] != old["alpha"]
        # Exactly the two servers the manager knows, and nothing else, run under it.
        await wait_until(
            lambda: live_children(os.getpid()) == sorted(now.values()),
            timeout=5,
            what=f"children {live_children(os.getpid())} == the known servers {sorted(now.values())}",
        )
    leak_guard.assert_clean()


async def test_a_reload_waits_for_the_one_before_it(
    python_server: Callable[..., ServerConfig],
    wait_until: Callable[..., Awaitable[None]],
    leak_guard: LeakGuard,
) -> None:
    """Two different configs at once: the second compares with what the first left (the new
    alpha), so it stops that one too, and what runs afterwards is the second config."""
    async with MCPServerManager([python_server(name="alpha")]) as manager:
        results: list[dict[str, list[str]]] = []

        async def reload(servers: list[ServerConfig]) -> None:
            results.append(await manager.apply(servers))

        async with anyio.create_task_group() as tg:  # tasks start, and queue for the lock, in order
            tg.start_soon(reload, [python_server("--extra-tools", "1", name="alpha")])
            tg.start_soon(reload, [python_server(name="gamma")])
        assert results == [
            {"added": [], "removed": [], "restarted": ["alpha"]},
            {"added": ["gamma"], "removed": ["alpha"], "restarted": []},
        ]
        assert [s.name for s in manager.all_servers] == ["gamma"]
        await wait_until(lambda: [s.name for s in manager.active_servers] == ["gamma"], 30, "gamma active")
        gamma = manager.status("gamma").pid
        await wait_until(lambda: live_children(os.getpid()) == [gamma], 5, "gamma's the only process")
    leak_guard.assert_clean()
