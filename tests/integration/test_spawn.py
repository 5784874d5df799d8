"""stdio children spawned off the event loop (sidecar/spawn.py), and their non-blocking pipes."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import threading

import anyio
import pytest
from support import wait_for

from sidecar.spawn import PipeReceiveStream, PipeSendStream, spawn
from sidecar.transports import stdio_transport

pytestmark = pytest.mark.anyio

ECHO_LINES = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line); sys.stdout.flush()\n"


async def test_a_child_outlives_the_loop_and_thread_that_asked_for_it() -> None:
    """`setpriv --pdeathsig KILL` kills a child when the thread that spawned it ends. Spawned from
    the loop's thread, or from anyio's worker threads (stopped with their loop, and after 10 s
    idle), a server would die with them; the spawner threads live as long as the process."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if os.environ.get("CI") == "true":
            pytest.fail("setpriv (util-linux) is missing")
        pytest.skip("needs setpriv (util-linux)")
    argv = [setpriv, "--pdeathsig", "KILL", "--", sys.executable, "-c", ECHO_LINES]
    spawned = []

    async def spawn_and_return() -> None:
        process = await spawn(argv, env=os.environ, cwd=None)
        spawned.append(process)
        assert process.stdin and process.stdout
        # An answer means setpriv has set the signal and exec'd python: only now can its thread's
        # end kill it (earlier, the child would be re-parented before it asks, and live).
        await PipeSendStream(process.stdin).send(b"ready\n")
        with anyio.fail_after(30):
            assert await PipeReceiveStream(process.stdout).receive() == b"ready\n"

    before = set(threading.enumerate())
    asker = threading.Thread(target=anyio.run, args=(spawn_and_return,))
    asker.start()
    asker.join(30)
    assert not asker.is_alive() and spawned
    # Every thread that run started (anyio's workers go once their loop is closed) has ended,
    # but the spawners, which must not.
    wait_for(
        lambda: not [
            t for t in set(threading.enumerate()) - before if not t.name.startswith("sidecar-spawn")
        ],
        10,
        "the asking loop's threads to end",
    )
    process = spawned[0]
    try:
        for pipe in (process.stdin, process.stdout, process.stderr):
            os.set_blocking(pipe.fileno(), True)  # type: ignore[union-attr]
        out, _ = process.communicate(b"still here\n", timeout=30)
        assert out == b"still here\n", process.returncode  # a killed child answers nothing
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_pipes_carry_a_large_message_both_ways_and_end_at_exit() -> None:
    process = await spawn([sys.executable, "-c", ECHO_LINES], env=os.environ, cwd=None)
    assert process.stdin and process.stdout and process.stderr
    send, receive = PipeSendStream(process.stdin), PipeReceiveStream(process.stdout)
    line = b"x" * (4 * 1024 * 1024) + b"\n"  # far beyond a pipe's 64 KB: both sides must wait for room
    received = bytearray()
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send.send, line)
                while len(received) < len(line):
                    received += await receive.receive()
            assert bytes(received) == line
            await send.aclose()  # the child's stdin ends, so it exits
            with pytest.raises(anyio.EndOfStream):
                while True:
                    await receive.receive()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        await receive.aclose()
        await PipeReceiveStream(process.stderr).aclose()


async def test_closing_a_pipe_wakes_its_waiting_reader_and_refuses_further_use() -> None:
    process = await spawn([sys.executable, "-c", ECHO_LINES], env=os.environ, cwd=None)
    assert process.stdin and process.stdout and process.stderr
    send, receive = PipeSendStream(process.stdin), PipeReceiveStream(process.stdout)
    outcome: list[BaseException] = []

    async def read() -> None:
        try:
            await receive.receive()
        except BaseException as exc:
            outcome.append(exc)

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()  # the reader waits: the child has said nothing
                await receive.aclose()
            assert len(outcome) == 1 and isinstance(outcome[0], anyio.ClosedResourceError)
            with pytest.raises(anyio.ClosedResourceError):
                await receive.receive()
            await send.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await send.send(b"late\n")
    finally:
        process.kill()
        process.wait(10)
        await send.aclose()
        await PipeReceiveStream(process.stderr).aclose()


def _open_fds() -> dict[int, str]:
    """This process's fds and what each is (a pipe, a socket, a file)."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
    return fds


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
async def test_a_session_that_fails_leaves_no_pipe_open() -> None:
    """The pipes are closed on every way out of the transport, not when the collector gets to
    them: a failed session's traceback holds the process, and its pipes, for as long as it lives."""

    async def fail_a_session() -> None:
        with pytest.raises(ExceptionGroup) as failed:
            async with stdio_transport(sys.executable, ["-c", ECHO_LINES], env={}, cwd=None, close_timeout=2):
                raise RuntimeError("the session failed")
        assert failed.group_contains(RuntimeError, match="the session failed")

    await fail_a_session()  # whatever is made once per process (a spawner thread ...) is made now
    gc.disable()  # nothing may be closed by the collector
    try:
        before = _open_fds()
        await fail_a_session()
        after = _open_fds()
        pipes = [target for target in after.values() if target.startswith("pipe:")]
        assert len(pipes) == len([t for t in before.values() if t.startswith("pipe:")]), (before, after)
    finally:
        gc.enable()
