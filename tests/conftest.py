"""Shared fixtures: server configs, real HTTP servers, reference servers, events, and a leak guard.

Async tests run on anyio's pytest plugin (``@pytest.mark.anyio``), asyncio backend only.
Helpers are reached through fixtures (a test module never imports this file at run time);
test modules may import the helper classes under ``TYPE_CHECKING`` for annotations.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from externals import require
from support import (
    BEHAVING,
    EVERYTHING_JS,
    FILESYSTEM_JS,
    LOCALHOST,
    alive,
    direct_children,
    free_port,
    listening_pids,
    proc_stat,
)

from sidecar.config import ServerConfig
from sidecar.events import LifecycleEvent, Subscription
from sidecar.manager import MCPServerManager

# Short enough that a test sees probes, losses and reconnects within a second or two.
FAST: dict[str, Any] = {
    "connect_timeout": 15.0,  # generous: only the tests that time out on purpose set their own
    "health": {"interval": 0.2, "timeout": 0.5, "failure_threshold": 2},
    "reconnect": {"initial_backoff": 0.1, "max_backoff": 0.3, "multiplier": 2.0, "jitter": 0.5},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- externals: skip locally, fail in CI ----------------------------------------------------------


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    require(path is not None, "node")
    assert path is not None
    return path


@pytest.fixture
def everything_js(node: str) -> Path:
    require(EVERYTHING_JS.is_file(), f"{EVERYTHING_JS} (run `make test` or npm install into .cache/npm)")
    return EVERYTHING_JS


@pytest.fixture
def filesystem_js(node: str) -> Path:
    require(FILESYSTEM_JS.is_file(), f"{FILESYSTEM_JS} (run `make test` or npm install into .cache/npm)")
    return FILESYSTEM_JS


@pytest.fixture
def time_server_module() -> str:
    require(importlib.util.find_spec("mcp_server_time") is not None, "the mcp-server-time package")
    return "mcp_server_time"


# -- configs ---------------------------------------------------------------------------------------


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def server_config(name: str, transport: str = "stdio", **fields: Any) -> ServerConfig:
    """A validated `ServerConfig` with the FAST timings; `health`/`reconnect` overrides merge."""
    return ServerConfig.model_validate(_merge(FAST, {"name": name, "transport": transport, **fields}))


def python_server(*flags: str, name: str = "behaving", **fields: Any) -> ServerConfig:
    """stdio config for `python tests/servers/behaving.py FLAGS...`."""
    return server_config(name, command=sys.executable, args=[str(BEHAVING), *flags], **fields)


@pytest.fixture(name="server_config")
def _server_config_fixture() -> Callable[..., ServerConfig]:
    return server_config


@pytest.fixture(name="python_server")
def _python_server_fixture() -> Callable[..., ServerConfig]:
    return python_server


# -- waiting for conditions --------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll `predicate` until true; fail after `timeout` s."""
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"{what}: not true within {timeout:g}s")


@pytest.fixture(name="wait_until")
def _wait_until_fixture() -> Callable[..., Awaitable[None]]:
    return wait_until


class EventLog:
    """Every event of one subscription, kept in order; read on demand (no background task)."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self.events: list[LifecycleEvent] = []
        self.ended = False

    async def _next(self) -> bool:
        if self.ended:
            return False
        try:
            self.events.append(await self._subscription.receive())
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.ended = True
        return not self.ended

    def drain(self) -> list[LifecycleEvent]:
        """Take in what is buffered now, without waiting; return everything seen."""
        while not self.ended:
            try:
                self.events.append(self._subscription.receive_nowait())
            except anyio.WouldBlock:
                break
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self.ended = True
        return self.events

    def mark(self) -> int:
        """A position to search from, so that later waits ignore what came before."""
        return len(self.drain())

    async def wait_for(
        self, predicate: Callable[[LifecycleEvent], bool], timeout: float, *, after: int = 0
    ) -> LifecycleEvent:
        """The first event at index >= `after` that matches, waiting at most `timeout` s."""
        i = after
        with anyio.move_on_after(timeout):
            while True:
                while i < len(self.events):
                    event = self.events[i]
                    i += 1
                    if predicate(event):
                        return event
                if not await self._next():
                    break
        seen = "\n  ".join(self.describe(self.events[after:][-30:]))
        raise AssertionError(f"no matching event within {timeout:g}s; events seen:\n  {seen}")

    async def collect(self, window: float) -> list[LifecycleEvent]:
        """Everything that arrives within `window` s (for asserting that something does NOT happen)."""
        start = self.mark()
        with anyio.move_on_after(window):
            while await self._next():
                pass
        return self.events[start:]

    def of(self, server: str, *, skip: Sequence[str] = ("health_check_passed",)) -> list[LifecycleEvent]:
        return [e for e in self.drain() if e.server == server and e.kind not in skip]

    @staticmethod
    def describe(events: Sequence[LifecycleEvent]) -> list[str]:
        return [f"{e.server}: {e.kind} ({e.previous.value} -> {e.state.value})" for e in events]


def is_event(server: str, kind: str, **fields: Any) -> Callable[[LifecycleEvent], bool]:
    """Predicate: an event of `kind` for `server` whose attributes equal `fields`."""

    def match(event: LifecycleEvent) -> bool:
        return (
            event.server == server
            and event.kind == kind
            and all(getattr(event, key, object()) == value for key, value in fields.items())
        )

    return match


@pytest.fixture
def watch() -> Callable[[MCPServerManager], EventLog]:
    """`watch(manager)` subscribes (before or after entering) and returns an `EventLog`."""
    return lambda manager: EventLog(manager.subscribe(max_buffer=10_000))


@pytest.fixture(name="is_event")
def _is_event_fixture() -> Callable[..., Callable[[LifecycleEvent], bool]]:
    return is_event


# -- processes: /proc, leak guard --------------------------------------------------------------------


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


class LeakGuard:
    """Records the test process's children, and finds any left behind.

    A sampler thread notes every child it sees (stdio servers run in their own process
    group and session), so that a grandchild which outlived its parent is still found by
    its group or session. Processes a fixture manages itself are `allow`ed.
    """

    def __init__(self) -> None:
        self.me = os.getpid()
        self.before = direct_children(self.me)
        self.seen: set[int] = set()
        self.allowed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="leak-guard", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.seen.update(direct_children(self.me) - self.before)

    def allow(self, pid: int) -> None:
        self.allowed.add(pid)

    @staticmethod
    def members_of_group(pgrp: int) -> list[int]:
        """Live processes in process group `pgrp` (a stdio server leads its own)."""
        return [pid for pid in _all_pids() if (stat := proc_stat(pid)) and stat[2] == pgrp and stat[0] != "Z"]

    alive = staticmethod(alive)

    @staticmethod
    def state(pid: int) -> str | None:
        """The process state letter (R, S, T, Z ...) of `pid`, or None once it is gone (reaped)."""
        stat = proc_stat(pid)
        return None if stat is None else stat[0]

    def leftovers(self) -> dict[int, str]:
        """Our children, and live members of groups/sessions led by them, still in the process table.

        A dead grandchild waits as a zombie for whoever adopted it (init, which may be slow to
        reap in a container): it is gone for our purposes. A zombie child of ours is not: we
        failed to reap it.
        """
        self.seen.update(direct_children(self.me) - self.before)
        leaders = self.seen - self.allowed
        ignored = self.before | self.allowed | {self.me}
        found: dict[int, str] = {}
        for pid in _all_pids():
            stat = proc_stat(pid)
            if stat is None or pid in ignored:
                continue
            state, ppid, pgrp, session, comm = stat
            ours = ppid == self.me
            if ours or (state != "Z" and (pgrp in leaders or session in leaders)):
                found[pid] = f"pid {pid} ({comm}, state {state}, ppid {ppid}, pgrp {pgrp})"
        return found

    def assert_clean(self, grace: float = 0.5) -> None:
        """Assert that nothing is left; `grace` covers a SIGKILLed process still on its way out."""
        deadline = time.monotonic() + grace
        while (leftovers := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in leftovers:  # all descendants of this test: kill them (by pid) so one failure stays one
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"child processes left behind: {list(leftovers.values())}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def leak_guard() -> Iterator[LeakGuard]:
    """Fails the test if any child process is left once it and its fixtures are done.

    Tests may also call `leak_guard.assert_clean()` right after the manager exits.
    """
    guard = LeakGuard()
    try:
        yield guard
    finally:
        guard.stop()
    guard.assert_clean()


# -- services we run ourselves over HTTP ---------------------------------------------------------------


class PortTaken(AssertionError):
    """A server could not listen: another process took its port after it was picked."""


class Service:
    """A server process on a local port, started, SIGKILLed and restarted by its fixture only."""

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        path: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        on_spawn: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.url = f"http://{LOCALHOST}:{port}{path}"
        self.log = log
        self.env = env
        self.on_spawn = on_spawn
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=None if self.env is None else {**os.environ, **self.env},
                start_new_session=True,
            )
        self.on_spawn(self.process.pid)

    async def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until our process listens on the port (or dies: `PortTaken` if another has it).

        The port was free when picked, and another test's server (another xdist worker) may
        have taken it since: what answers there must be ours, or a test talks to a stranger.
        """
        with anyio.move_on_after(timeout):
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    failure = PortTaken if listening_pids(self.port) else AssertionError
                    raise failure(f"{self.argv} exited with {self.process.returncode}:\n{self.tail()}")
                try:
                    stream = await anyio.connect_tcp(LOCALHOST, self.port)
                except OSError:
                    await anyio.sleep(0.02)
                    continue
                await stream.aclose()
                if self._ours_listening():
                    return
                await anyio.sleep(0.02)  # someone else's: ours will fail to bind, and say so
        raise AssertionError(f"port {self.port} not accepting within {timeout:g}s:\n{self.tail()}")

    def _ours_listening(self) -> bool:
        """Whether the listener is in our process's group (a --respawn server serves from a child)."""
        assert self.process is not None
        group = self.process.pid  # it leads its own (start_new_session)
        return any((stat := proc_stat(pid)) and stat[2] == group for pid in listening_pids(self.port))

    async def start(self) -> Service:
        self.spawn()
        await self.wait_ready()
        return self

    def kill(self) -> None:
        """SIGKILL our process and its group (it leads one: anything it started goes too), and reap it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture
def services(leak_guard: LeakGuard, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """`services(argv, port=, path=, env=, port_env=)` makes a `Service` (not yet started).

    Every one is SIGKILLed at teardown; the leak guard ignores their pids (managed here).
    """
    made: list[Service] = []

    def make(
        argv: Sequence[str],
        *,
        port: int | None = None,
        path: str = "/mcp",
        env: Mapping[str, str] | None = None,
        port_env: str | None = None,
    ) -> Service:
        port = free_port() if port is None else port
        if port_env is not None:  # servers that take their port from the environment (PORT=...)
            env = {**(env or {}), port_env: str(port)}
        log = tmp_path / f"service-{len(made)}.log"
        service = Service(argv, port, path, log, env, leak_guard.allow)
        made.append(service)
        return service

    try:
        yield make
    finally:
        with contextlib.ExitStack() as stack:  # every service is killed, even if one kill fails
            for service in made:
                stack.callback(service.kill)


@pytest.fixture
def http_server(services: Callable[..., Service]) -> Callable[..., Awaitable[Service]]:
    """`await http_server("streamable-http" | "sse", *flags)`: behaving.py on a free local port, ready."""

    async def start(transport: str, *flags: str) -> Service:
        for attempt in range(3):
            port = free_port()
            argv = [sys.executable, str(BEHAVING), "--transport", transport, "--port", str(port), *flags]
            service = services(argv, port=port, path="/sse" if transport == "sse" else "/mcp")
            try:
                return await service.start()
            except PortTaken:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return start
