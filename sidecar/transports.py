"""Transports: a stdio child process we own, the SDK's HTTP transports, and end-of-stream taps.

stdio is ours rather than the SDK's `stdio_client` for three reasons the supervisor
needs: the exit code and the tail of stderr (a user should read "exited with code 1:
ModuleNotFoundError: ..." and not "Connection closed"), the child's pid (status,
tests), and a close that fits a caller's budget (the SDK's takes up to 4 s for a
stopped child). The wire format is the same: one JSON-RPC message per line.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client._transport import TransportStreams
from mcp.client.sse import sse_client
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from .errors import describe_error
from .http_probe import KEEPALIVE, media_type
from .spawn import PipeReceiveStream, PipeSendStream, spawn
from .streams import StreamEnd, get_stream_news

__all__ = [
    "ChildProcess",
    "GetStreamTap",
    "StreamNews",
    "http_transport",
    "sse_transport",
    "stdio_transport",
    "watch_end",
]

_STDERR_TAIL_LINES = 20
_STDERR_LINE_MAX = 500
_MAX_LINE_BYTES = 64 * 1024 * 1024  # a child that never writes a newline cannot exhaust memory
_EXIT_POLL = 0.002
_DRAIN_AFTER_EXIT = 0.02  # for stdout's last bytes after the process is gone
_SETPRIV = shutil.which("setpriv")
_HTTP_READ_TIMEOUT = 300.0  # SSE streams idle legitimately; dead peers are caught by probes instead
_TAP_NEWS_MAX = 16  # nobody reads them once the stream is given up; keep the last few


class ChildProcess:
    """The running stdio server as its supervisor sees it: pid, exit status, recent stderr."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid: int = process.pid
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.stderr_closed = anyio.Event()
        self.stdout_eof = anyio.Event()  # the child closed its stdout (exited, usually)
        self.exited = anyio.Event()  # the kernel says the process is gone, pipes or not
        self.stopped_by_us = False  # we closed or signalled it before it went away by itself

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited (reaping it), else None."""
        return self._process.poll()

    async def watch_exit(self) -> None:
        """Set `exited` when the process ends, even while a grandchild keeps its pipes open.

        Pipe EOF cannot tell; a pidfd (Linux >= 5.3) turns readable at exit. Elsewhere the
        exit status is polled.
        """
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux, or already reaped
            while self.returncode is None:
                await anyio.sleep(_EXIT_POLL * 10)
        else:
            try:
                await anyio.wait_readable(pidfd)
            finally:
                os.close(pidfd)
        self.exited.set()

    async def wait_exit(self, timeout: float) -> bool:
        """Whether the child has exited and been reaped within `timeout`. Polls the exit status:
        this also runs after `watch_exit` has been cancelled."""
        with anyio.move_on_after(timeout):
            while self.returncode is None:
                await anyio.sleep(_EXIT_POLL)
        return self.returncode is not None

    async def settle(self, timeout: float) -> None:
        """Wait (bounded) until the child has exited and its last stderr bytes are read."""
        with anyio.move_on_after(timeout):
            await self.wait_exit(timeout)
            await self.stderr_closed.wait()

    def exit_description(self) -> str | None:
        """ "exited with code 1: <last stderr line>" once the child has exited by itself, else None."""
        code = self.returncode
        if code is None or self.stopped_by_us:
            return None
        if code < 0:
            try:
                what = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
        else:
            what = f"exited with code {code}"
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), None)
        return f"{what}: {last.strip()}" if last else what

    def signal_group(self, sig: int) -> None:
        """Signal the child's whole process group; it leads its own (start_new_session)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def _argv(command: str, args: Sequence[str], path: str | None, cwd: str | None) -> list[str]:
    """The command line to spawn: the resolved command, wrapped so it dies with the sidecar.

    `setpriv --pdeathsig KILL` (util-linux) makes the kernel kill the child if the
    sidecar itself is killed outright (OOM, SIGKILL), when no shutdown code runs; it then
    execs the server, so the pid we see is the server's. Resolving first keeps "command
    not found" our own error rather than setpriv's exit code.
    """
    if os.sep in command and cwd and not os.path.isabs(command):
        command = os.path.join(cwd, command)
    resolved = shutil.which(command, path=path)
    if resolved is None:
        raise FileNotFoundError(errno.ENOENT, "command not found", command)
    if sys.platform == "linux" and _SETPRIV is not None:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", resolved, *args]
    return [resolved, *args]


def _parse_line(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # garbage on stdout reaches the session's message handler, as in the SDK
        return exc


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    close_timeout: float,
    on_spawn: Any = None,
) -> AsyncIterator[TransportStreams]:
    """Spawn the server in its own process group and speak newline-delimited JSON-RPC to it.

    On exit the child gets, within `close_timeout` in all: stdin closed, SIGTERM (with
    SIGCONT, so a stopped child can act on it), then SIGKILL; the group is killed last
    so no grandchild survives. This runs shielded: cancelling the caller cannot leak it.
    """
    child_env = get_default_environment() | dict(env)
    process = await spawn(_argv(command, args, child_env.get("PATH"), cwd), env=child_env, cwd=cwd)
    child = ChildProcess(process)
    if on_spawn is not None:
        on_spawn(child)
    assert process.stdin and process.stdout and process.stderr
    stdin = PipeSendStream(process.stdin)
    stdout, stderr = PipeReceiveStream(process.stdout), PipeReceiveStream(process.stderr)
    to_session, session_reads = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    session_writes, from_session = anyio.create_memory_object_stream[SessionMessage](0)

    stdout_scope = anyio.CancelScope()

    async def read_stdout() -> None:
        # Grown in place, and split only when a line ended: a 10 MB line then costs linear time,
        # where `bytes +=` and a split per 64 KB read took 2 s of the event loop (quadratic).
        buffer = bytearray()
        with stdout_scope, to_session:
            try:
                while True:
                    chunk = await stdout.receive()
                    buffer += chunk
                    if b"\n" not in chunk and len(buffer) <= _MAX_LINE_BYTES:
                        continue
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            await to_session.send(_parse_line(line))
                    if len(buffer) > _MAX_LINE_BYTES:
                        buffer = bytearray()
                        await to_session.send(ValueError("server wrote an over-long line; dropped"))
            except anyio.EndOfStream:
                child.stdout_eof.set()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass

    async def read_stderr() -> None:
        pending = b""
        try:
            with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                while True:
                    *lines, pending = (pending + await stderr.receive()).split(b"\n")
                    pending = pending[-_STDERR_LINE_MAX:]
                    for line in lines:
                        child.stderr_tail.append(line[:_STDERR_LINE_MAX].decode("utf-8", "replace"))
            if pending:
                child.stderr_tail.append(pending.decode("utf-8", "replace"))
        finally:
            child.stderr_closed.set()

    async def end_session_at_exit() -> None:
        # A grandchild holding stdout would hide the death until the next write; the
        # session ends at exit instead, once whatever the child wrote last is read.
        await child.exited.wait()
        with anyio.move_on_after(_DRAIN_AFTER_EXIT):
            await child.stdout_eof.wait()
        stdout_scope.cancel()

    async def write_stdin() -> None:
        async with from_session:
            try:
                async for message in from_session:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdin.send(data.encode() + b"\n")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await to_session.aclose()  # the child stopped reading: end the session's stream too

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child.watch_exit)
            tg.start_soon(read_stdout)
            tg.start_soon(end_session_at_exit)
            tg.start_soon(read_stderr)
            tg.start_soon(write_stdin)
            graceful = True
            try:
                yield session_reads, session_writes
            except BaseException:
                graceful = False  # cancelled or failed: nobody is waiting for a clean goodbye
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    session_writes.close()
                    session_reads.close()
                    await _stop_child(child, stdin, close_timeout, graceful)
                    # stderr's last lines hold the exit reason; a grandchild holding the pipe
                    # open must not hold us, hence the bound.
                    with anyio.move_on_after(0.1):
                        await child.stderr_closed.wait()
                tg.cancel_scope.cancel()
    finally:  # on every way out, an error's too: the child is dead or abandoned by now
        for stream in (stdin, stdout, stderr):
            await stream.aclose()


async def _stop_child(child: ChildProcess, stdin: Any, budget: float, graceful: bool) -> None:
    """Close stdin, then SIGTERM, then SIGKILL, each with a share of `budget`.

    Not `graceful` (an abandoned connect, a cancelled caller): SIGKILL at once.
    """
    # A child that closed stdout first went away by itself; its exit status is its own story.
    child.stopped_by_us = not (child.stdout_eof.is_set() or child.exited.is_set())
    if not graceful:
        child.signal_group(signal.SIGKILL)
        await child.wait_exit(max(budget * 0.2, 0.1))
        return
    with suppress(Exception), anyio.move_on_after(0.1):
        await stdin.aclose()
    if not await child.wait_exit(budget * 0.4):
        child.signal_group(signal.SIGTERM)
        child.signal_group(signal.SIGCONT)
        if not await child.wait_exit(budget * 0.4):
            child.signal_group(signal.SIGKILL)
            await child.wait_exit(max(budget * 0.2, 0.1))
    # Anything the server started in its group goes with it.
    child.signal_group(signal.SIGKILL)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every HTTP server. httpx2 builds one per client by default, loading
    the CA bundle each time: ~70% of the CPU of connecting hundreds of servers (profiled),
    and about a megabyte each, even for plain-HTTP URLs that never use it."""
    return httpx2.create_ssl_context()


def _http_client(
    headers: Mapping[str, Any] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
    *,
    event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
) -> httpx2.AsyncClient:
    """An httpx2 client on the shared TLS context (also the SDK's client factory for SSE)."""
    return httpx2.AsyncClient(
        headers=dict(headers or {}),
        timeout=timeout,
        auth=auth,
        verify=tls_context(),
        event_hooks=event_hooks,
        # We close an idle connection before the server does (uvicorn and Node: 5 s): a request
        # sent as the server closes fails with ReadError, and that ends the SDK's whole session.
        limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE),
    )


@asynccontextmanager
async def http_transport(
    url: str, headers: Mapping[str, str], connect_timeout: float, tap: GetStreamTap | None = None
) -> AsyncIterator[TransportStreams]:
    """Streamable HTTP with our own httpx2 client: the SDK default waits 30 s to connect.

    `tap` is shown every response (an event hook, so the client keeps its proxy settings).
    """
    timeout = httpx2.Timeout(connect_timeout, read=_HTTP_READ_TIMEOUT)
    hooks = {"response": [tap.on_response]} if tap is not None else None
    async with (
        _http_client(headers, timeout, event_hooks=hooks) as client,
        # An answer streamed as an event may be as large as a stdio line (the SDK's default: 1 MiB).
        streamable_http_client(url, http_client=client, max_sse_event_size=_MAX_LINE_BYTES) as streams,
    ):
        yield streams


@dataclass(frozen=True, slots=True)
class StreamNews:
    """The answer to a GET for the event stream: "opened", "refused" or "failed", and when."""

    kind: str
    error: str | None
    at: float  # time.monotonic()


class GetStreamTap:
    """Watches the standalone GET stream of an initialize-era streamable-HTTP session.

    The SDK opens that stream after the handshake and, when it ends, re-opens it by itself
    a second later, telling nobody: its messages still flow, but the end of the TCP
    connection (the quickest sign of a dead server) is invisible above the transport.
    This tap sees each GET's answer and wraps the body of an event stream, so that its end
    is news: a `StreamNews` at the answer, a `StreamEnd` (graceful or dropped) when the
    server side stops. A stream we close ourselves is no news.
    """

    def __init__(self) -> None:
        self.session_id: str | None = None  # the server's latest Mcp-Session-Id, for our own probes
        self._news: deque[StreamNews | StreamEnd] = deque(maxlen=_TAP_NEWS_MAX)
        self._wake = anyio.Event()
        self._ever_opened = False

    async def on_response(self, response: httpx2.Response) -> None:
        session_id = response.headers.get("mcp-session-id")
        if session_id:
            self.session_id = session_id
        if response.request.method != "GET":
            return
        content_type = media_type(response.headers.get("content-type", ""))
        kind = get_stream_news(response.status_code, content_type == "text/event-stream", self._ever_opened)
        if kind is None:
            return
        if kind == "opened":
            self._ever_opened = True
            response.stream = _WatchedBody(response.stream, self._tell)
            self._tell(StreamNews(kind, None, time.monotonic()))
        else:
            self._tell(
                StreamNews(kind, f"HTTP {response.status_code} to the event stream's GET", time.monotonic())
            )

    def _tell(self, news: StreamNews | StreamEnd) -> None:
        self._news.append(news)
        self._wake.set()

    async def next(self) -> StreamNews | StreamEnd:
        """The oldest news not yet taken, waiting for some if there is none."""
        while not self._news:
            await self._wake.wait()
            self._wake = anyio.Event()
        return self._news.popleft()


class _WatchedBody(httpx2.AsyncByteStream):
    """A response body that reports how it ended: by the server (cleanly or broken) or not at all."""

    def __init__(self, inner: httpx2.AsyncByteStream, tell: Callable[[StreamEnd], None]) -> None:
        self._inner = inner
        self._tell = tell
        self._opened = time.monotonic()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:  # the connection broke under it: reset, incomplete body, read timeout
            self._tell(StreamEnd("dropped", describe_error(exc)[1], time.monotonic() - self._opened))
            raise
        self._tell(
            StreamEnd("graceful", "the server ended the event stream", time.monotonic() - self._opened)
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def sse_transport(
    url: str, headers: Mapping[str, str], connect_timeout: float
) -> AsyncIterator[TransportStreams]:
    """The legacy HTTP+SSE transport."""
    async with sse_client(
        url,
        headers=dict(headers),
        timeout=connect_timeout,
        sse_read_timeout=_HTTP_READ_TIMEOUT,
        httpx_client_factory=_http_client,
    ) as streams:
        yield streams


@asynccontextmanager
async def watch_end(transport: Any, ended: anyio.Event) -> AsyncIterator[TransportStreams]:
    """Pass a transport's streams through, setting `ended` when the server side stops sending.

    This is how a dead stdio child (EOF) or a closed SSE stream is noticed at once,
    without polling and without waiting for the next request to fail. Not streamable
    HTTP: the SDK feeds every POST's answer and the GET stream into one read stream that
    ends only with the transport, so a server's death never reaches it (`GetStreamTap`).
    """
    async with transport as (read_stream, write_stream):
        forward, session_reads = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            try:
                async with forward:
                    async for item in read_stream:
                        await forward.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield session_reads, write_stream
            finally:
                session_reads.close()
                tg.cancel_scope.cancel()
