"""The event stream tells one consistent story, in order, per server."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from sidecar import MCPServerManager, ServerConfig, ServerState
from sidecar.events import Connected, Lost, ReconnectAttempt, ReconnectScheduled

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

_S = ServerState


async def test_lifecycle_of_a_server_killed_once(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    manager = MCPServerManager([python_server(name="one")])
    events = watch(manager)  # subscribed before entering: the first `connecting` is seen too
    async with manager:
        pid = manager.status("one").pid
        assert pid is not None
        await events.wait_for(is_event("one", "health_check_passed"), timeout=2)  # probes are in the stream
        mark = events.mark()
        os.kill(pid, signal.SIGKILL)
        await events.wait_for(is_event("one", "connected"), timeout=15, after=mark)
    everything = events.drain()
    assert events.ended  # the bus closes when the manager leaves

    story = [e for e in everything if e.kind != "health_check_passed"]
    assert [e.kind for e in story] == [
        "connecting",
        "connected",
        "lost",
        "reconnect_scheduled",
        "reconnect_attempt",
        "connected",
        "stopped",
    ], events.describe(story)
    states = [
        _S.CONNECTING,
        _S.ACTIVE,
        _S.RECONNECTING,
        _S.RECONNECTING,
        _S.RECONNECTING,
        _S.ACTIVE,
        _S.STOPPED,
    ]
    assert [e.state for e in story] == states
    assert [e.transition for e in story] == [False, True, True, False, False, True, True]

    # Every event (probes included) starts where the one before it left the server.
    assert everything[0].previous is _S.CONNECTING
    for before, after in itertools.pairwise(everything):
        assert after.previous is before.state, events.describe([before, after])
        assert after.ts >= before.ts
    assert {e.server for e in everything} == {"one"}

    first, lost, scheduled, attempt, second = story[1:6]
    assert isinstance(first, Connected) and isinstance(second, Connected)
    assert isinstance(lost, Lost) and lost.reason == "exited"
    assert "SIGKILL" in lost.error and lost.connected_for > 0
    assert isinstance(scheduled, ReconnectScheduled) and scheduled.attempt == 1
    assert 0 < scheduled.delay <= 0.3  # within the configured max_backoff
    assert isinstance(attempt, ReconnectAttempt) and attempt.attempt == 1
    assert (first.attempt, second.attempt) == (0, 1)
    assert second.tools == first.tools == ("echo", "add", "sleep", "pid")
    leak_guard.assert_clean()
