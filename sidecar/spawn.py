"""Starting a stdio server without stopping the event loop, and its pipes as anyio byte streams.

uvloop (like asyncio) forks in the event loop's thread and waits there until the child has
exec'd: with the sidecar's heap that held the loop ~15 ms per spawn, and 200 servers started
at once left `/livez` unanswered for up to 0.8 s, as a crash loop's restarts stalled every
other server's probes (benchmarks/README.md, "Starting stdio servers"). `subprocess.Popen`
in a thread of its own forks with vfork and waits for the exec with the GIL released, so the
loop runs on. The pipes are then read and written non-blocking, woken by the loop's poller.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.lowlevel import checkpoint

__all__ = ["PipeReceiveStream", "PipeSendStream", "spawn"]

# The threads that spawn. Never retired: `setpriv --pdeathsig` (see `transports._argv`) kills a
# child when the *thread* that spawned it ends, and anyio's worker threads end after 10 s idle,
# which killed every stdio server 10 s after its start. Four at once: more buys nothing (the
# kernel's fork and exec are the cost) and each contends with the loop for the GIL; 200 spawns
# took 2.1 s at 4 (loop lag max 11 ms) and 1.7 s at 16 (lag max 25 ms).
_SPAWNERS = ThreadPoolExecutor(4, thread_name_prefix="sidecar-spawn")
_READ_SIZE = 65536


async def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session with three pipes, from a spawner thread.

    Shielded: a child started while the caller was being cancelled is still handed back, so
    the caller's cleanup can stop it (a cancelled wait would leak a running process).
    """

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )

    with anyio.CancelScope(shield=True):
        process = await asyncio.wrap_future(_SPAWNERS.submit(start))
    for pipe in (process.stdin, process.stdout, process.stderr):
        assert pipe is not None
        os.set_blocking(pipe.fileno(), False)
    return process


class PipeReceiveStream(ByteReceiveStream):
    """The read end of a child's non-blocking pipe."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe

    async def receive(self, max_bytes: int = _READ_SIZE) -> bytes:
        while True:
            await checkpoint()  # before the read: a cancellation here loses no bytes
            if self._pipe.closed:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._pipe.fileno(), max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._pipe.fileno())
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        _close(self._pipe)


class PipeSendStream(ByteSendStream):
    """The write end of a child's non-blocking pipe. A child that stopped reading makes
    `send` wait for room, as a full blocking pipe would, but without stopping the loop."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe

    async def send(self, item: bytes) -> None:
        await checkpoint()
        view = memoryview(item)
        while view:
            if self._pipe.closed:
                raise anyio.ClosedResourceError
            try:
                written = os.write(self._pipe.fileno(), view)
            except BlockingIOError:
                await anyio.wait_writable(self._pipe.fileno())
                continue
            view = view[written:]

    async def aclose(self) -> None:
        _close(self._pipe)


def _close(pipe: IO[bytes]) -> None:
    if not pipe.closed:
        anyio.notify_closing(pipe.fileno())  # a task waiting on it gets ClosedResourceError
        pipe.close()
