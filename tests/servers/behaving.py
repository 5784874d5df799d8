"""A real MCP server that behaves, or misbehaves, as its flags say. Used by the tests.

Run it as ``python tests/servers/behaving.py [options]``; ``--help`` lists the flags and
``tests/servers/README.md`` describes each misbehaviour and exactly when it triggers.

Start-up misbehaviours (pidfile, SIGTERM, slow start, crash, hang) run before the MCP
SDK is imported: the import costs most of the spawn time, and a crashing or hanging
server should fail fast and cheaply, as a real one missing a dependency would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import Context, MCPServer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HOSTILE_NAMES", "HOSTILE_SERVER_INFO", "main", "parse_args"]

TRANSPORTS = ("stdio", "streamable-http", "sse")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# What a real server missing a dependency prints before it dies.
_FAKE_TRACEBACK = """\
Traceback (most recent call last):
  File "{script}", line 42, in <module>
    from fancy_dependency import FancyClient
ModuleNotFoundError: No module named 'fancy_dependency'
"""

# Lines some servers print to stdout by mistake; none of them is JSON-RPC.
_GARBAGE_LINES = (
    "Starting behaving MCP server...",
    "DEBUG: loaded configuration from /etc/behaving.toml",
    "=== ready ===",
)

# What the `garbage` tool writes between two messages: not JSON, not UTF-8, an answer to a
# request nobody sent, and half a message. Each is one write(2) of less than PIPE_BUF bytes,
# so none can tear a line the SDK writes at the same time.
_GARBAGE_BYTES = (
    b"this line is not JSON\n",
    b"\xff\xfe\x00 not even UTF-8 \xc3\x28\n",
    b'{"jsonrpc": "2.0", "id": 987654321, "result": {}}\n',
    b'{"jsonrpc": "2.0", "method": "notifications/\n',
)


# Tool and prompt names a server may send: the SDK only warns about names outside [A-Za-z0-9_.-].
# A lone surrogate ("\ud800") is not here: pydantic refuses to serialize it (the SDK server cannot
# send it), and the SDK client's JSON parser refuses it too.
HOSTILE_NAMES = (
    'quote"double',
    "quote'single",
    "back\\slash",
    "new\nline",
    "carriage\rreturn",
    "tab\tname",
    "nul\x00byte",
    "esc\x1b[31mred\x1b[0m",
    "bidi\u202eevil",
    "line\u2028separator",
    "next\x85line",
    "名前-🙂",
    "<img src=x onerror=window.pwned=1>",
    "</script><script>window.pwned=2</script>",
    "a/b?c#d%2F",
    "{{template}} %s %n ${HOME}",
    "x\n# TYPE evil counter\nevil_total 1",  # exposition injection
    '"}\n{"event":"forged","level":"error"',  # log line forgery
    "L" * 10_240,  # 10 KB
)
# serverInfo as a hostile server says it: it reaches mcp_server_info's labels, /health/mcp and the page.
HOSTILE_SERVER_INFO = ('evil"\n<b>server</b>\x1b[2J', '1.0"} 1\n# EOF')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; every misbehaviour is off by default."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transport", choices=TRANSPORTS, default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--json-response", action="store_true", help="streamable-http: JSON bodies, not SSE")
    p.add_argument("--name", default="behaving", help="server name reported in serverInfo")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING", help="SDK and uvicorn logs (stderr)")
    p.add_argument("--extra-tools", type=int, default=0, metavar="N", help="add tools tool_0 .. tool_{N-1}")
    p.add_argument("--alias", action="append", default=[], metavar="NAME", help="echo, also as NAME")
    p.add_argument("--meta-tool", action="store_true", help="add tool meta: the _meta and headers it got")
    p.add_argument("--ask-tool", action="store_true", help="add tool ask: asks its caller (2026-07-28 input)")
    p.add_argument("--pidfile", metavar="PATH", help="write the pid here at start (atomically)")
    p.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM (SIGKILL still works)")
    p.add_argument("--slow-start", type=float, default=0.0, metavar="SECONDS", help="sleep first, then start")
    p.add_argument("--crash-at-start", action="store_true", help="print a traceback to stderr and exit")
    p.add_argument("--exit-code", type=int, default=1, help="exit code of every crash (default 1)")
    p.add_argument("--hang-at-initialize", action="store_true", help="stay alive, never answer anything")
    p.add_argument("--garbage-stdout", action="store_true", help="print non-JSON lines to stdout first")
    p.add_argument("--crash-after-calls", type=int, metavar="N", help="die when call N+1 arrives")
    p.add_argument("--hang-after-calls", type=int, metavar="N", help="hang once N calls are answered")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="tools that change the lists at run time (add_tool ...) and count or end event streams",
    )
    p.add_argument("--refuse-get-stream", action="store_true", help="streamable-http: answer GET with 405")
    p.add_argument("--no-listen", action="store_true", help="2026-07-28: leave subscriptions/listen unserved")
    p.add_argument(
        "--late-first-listen", type=float, default=0.0, metavar="SECONDS", help="serve the first listen late"
    )
    p.add_argument(
        "--fail-listing", action="store_true", help="answer prompts/list and resources/list with an error"
    )
    p.add_argument(
        "--hostile-names",
        action="store_true",
        help="also offer tools and prompts named HOSTILE_NAMES, and a hostile serverInfo",
    )
    p.add_argument("--crash-at-initialize", action="store_true", help="die/reset on the handshake")
    p.add_argument("--crash-after", type=float, metavar="SECONDS", help="exit SECONDS after listings")
    p.add_argument("--respawn", action="store_true", help="HTTP: serve from a child, re-forked")
    p.add_argument("--http-500-after-calls", type=int, metavar="N", help="HTTP: POSTs get 500 after N calls")
    p.add_argument("--fault-tools", action="store_true", help="add the tools big, hangup and garbage")
    p.add_argument("--also-sse", action="store_true", help="streamable-http: serve SSE (/sse) too")
    args = p.parse_args(argv)
    for flag in ("extra_tools", "crash_after_calls", "hang_after_calls", "http_500_after_calls"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            p.error(f"--{flag.replace('_', '-')} must be >= 0")
    if args.crash_after is not None and not args.crash_after > 0:
        p.error("--crash-after must be > 0")
    if args.transport == "stdio" and (args.respawn or args.http_500_after_calls is not None):
        p.error("--respawn and --http-500-after-calls need an HTTP transport")
    if args.also_sse and args.transport != "streamable-http":
        p.error("--also-sse goes with --transport streamable-http")
    return args


def write_pidfile(path: str) -> None:
    """Write our pid so that a reader never sees a half-written file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def crash_at_start(code: int) -> NoReturn:
    sys.stderr.write(_FAKE_TRACEBACK.format(script=os.path.abspath(__file__)))
    sys.stderr.flush()
    sys.exit(code)


def hang_at_initialize(args: argparse.Namespace) -> NoReturn:
    """Stay alive and answer nothing: the client's initialize goes unanswered."""
    if args.transport != "stdio":
        # Listen but never accept: connections complete in the kernel backlog and then
        # wait forever, as with a hung server (a closed port would look like a dead one).
        import socket

        sock = socket.create_server((args.host, args.port), reuse_port=False)
        sock.listen(128)
    block_forever()


def crash_at_initialize(args: argparse.Namespace) -> NoReturn:
    """Die on the client's first request, unanswered (no SDK needed to read one).

    stdio: read the first line (`initialize` or `server/discover`), then exit. HTTP: accept
    every connection, read its request head, then reset it (RST, no response): a server that
    dies on each handshake and is restarted at once, which a closed port would not show.
    """
    if args.transport == "stdio":
        sys.stdin.buffer.readline()
        die(f"behaving: crashing on the handshake (exit {args.exit_code})", args.exit_code)
    sock = socket.create_server((args.host, args.port))
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                    head += chunk
            except OSError:
                pass
            # Linger 0: close() sends RST, as the kernel does for a process that died.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def die(line: str, code: int) -> NoReturn:
    """One line to stderr, then `os._exit`: no cleanup, nothing queued is flushed, like a real crash."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(code)


def block_forever() -> NoReturn:
    # time.sleep, not an await: a blocked event loop answers nothing, pings included.
    while True:
        time.sleep(3600)


_LISTINGS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")


class Misbehaviour:
    """Server middleware that counts tool calls and crashes or hangs on cue.

    It sees every inbound message (``initialize``, ``ping``, ``tools/call``, notifications).
    """

    def __init__(
        self,
        crash_after_calls: int | None,
        hang_after_calls: int | None,
        exit_code: int,
        fail_listing: bool = False,
        crash_after: float | None = None,
        late_first_listen: float = 0.0,
    ) -> None:
        self.fail_listing = fail_listing
        self.late_first_listen = late_first_listen  # seconds; once, then listens are served at once
        self.crash_after_calls = crash_after_calls
        self.hang_after_calls = hang_after_calls
        self.exit_code = exit_code
        self.crash_after = crash_after
        self.calls_arrived = 0
        self.calls_answered = 0
        self._crash_timer: threading.Timer | None = None

    def _arm_crash_timer(self) -> None:
        """`--crash-after`, from the last listing on: a thread, so the crash comes on time even
        while the loop is busy."""
        if self._crash_timer is not None:
            self._crash_timer.cancel()
        line = f"behaving: crashing {self.crash_after:g}s after its last listing (exit {self.exit_code})"
        self._crash_timer = threading.Timer(self.crash_after or 0.0, die, (line, self.exit_code))
        self._crash_timer.daemon = True
        self._crash_timer.start()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if self.hang_after_calls is not None and self.calls_answered >= self.hang_after_calls:
            done = self.calls_answered
            sys.stderr.write(f"behaving: hanging after {done} tool calls ({ctx.method} unanswered)\n")
            sys.stderr.flush()
            block_forever()
        if ctx.method == "subscriptions/listen":
            if self.late_first_listen:
                import anyio

                late, self.late_first_listen = self.late_first_listen, 0.0
                await anyio.sleep(late)
            return await STREAMS.serve(STREAMS.until_ended(call_next(ctx), listen_closed(ctx)))
        if self.fail_listing and ctx.method in ("prompts/list", "resources/list"):
            from mcp.shared.exceptions import MCPError
            from mcp_types import INTERNAL_ERROR

            raise MCPError(INTERNAL_ERROR, f"{ctx.method} is broken on purpose")
        if ctx.method in _LISTINGS and self.crash_after is not None:
            try:
                return await call_next(ctx)
            finally:
                self._arm_crash_timer()  # a client lists everything once, when it connects
        if ctx.method != "tools/call":
            return await call_next(ctx)
        self.calls_arrived += 1
        if self.crash_after_calls is not None and self.calls_arrived > self.crash_after_calls:
            n, code = self.calls_arrived, self.exit_code
            die(f"behaving: crashing on tool call {n} (exit {code})", code)
        try:
            return await call_next(ctx)
        finally:
            self.calls_answered += 1


class Streams:
    """The server's open event streams (GET streams, listen streams), which `end_streams` ends cleanly."""

    def __init__(self) -> None:
        self._end: Any = None  # an anyio.Event, made on first use (inside the event loop)
        self.open = 0  # streams being served now

    @property
    def ending(self) -> Any:
        import anyio

        if self._end is None:
            self._end = anyio.Event()
        return self._end

    def end_all(self) -> int:
        """End the streams open now (streams opened later wait for the next call); how many."""
        ended = self.open
        self.ending.set()
        self._end = None
        return ended

    async def until_ended(self, serving: Any, closing: Any, ending: Any = None) -> Any:
        """Await `serving` (a stream's handler) unless `end_all` comes first (or `ending` is set):
        then return `closing`."""
        import anyio

        ending = self.ending if ending is None else ending
        result: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                result.append(await serving)
                tg.cancel_scope.cancel()

            tg.start_soon(serve)
            await ending.wait()
            tg.cancel_scope.cancel()
        return result[0] if result else closing

    async def serve(self, serving: Any) -> Any:
        """Await a stream's handler, counted as open meanwhile."""
        self.open += 1
        try:
            return await serving
        finally:
            self.open -= 1


STREAMS = Streams()


def listen_closed(ctx: ServerRequestContext[Any, Any]) -> Any:
    """The result that ends a listen stream gracefully (the spec's closing frame)."""
    import mcp_types as types
    from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY

    return types.SubscriptionsListenResult(_meta={SUBSCRIPTION_ID_META_KEY: ctx.request_id})


async def announce(ctx: Context[Any], kind: str) -> None:
    """Tell clients that a list changed, the way their era listens: a notification on the
    session (initialize era), an event for `subscriptions/listen` streams (2026-07-28)."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    await getattr(ctx, f"notify_{kind}_changed")()
    request = ctx.request_context
    if request.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
        await getattr(request.session, f"send_{kind.rstrip('s')}_list_changed")()


def add_dynamic_tools(server: MCPServer[Any]) -> None:
    """Tools that change what the server offers at run time, and announce it."""
    # The SDK finds a tool's context parameter by resolving its annotation in this module's globals.
    global Context
    from mcp.server.mcpserver import Context

    @server.tool()
    async def add_tool(name: str, ctx: Context) -> str:
        """Add a tool `name` (it returns its own name) and announce the change."""
        server.add_tool(_named(name), name=name, description=f"Added at run time: {name}.")
        await announce(ctx, "tools")
        return name

    @server.tool()
    async def add_prompt(name: str, ctx: Context) -> str:
        """Add a prompt `name` and announce the change."""
        server.prompt(name=name, description=f"Added at run time: {name}.")(_named(name))
        await announce(ctx, "prompts")
        return name

    @server.tool()
    async def add_resource(name: str, ctx: Context) -> str:
        """Add a resource behaving://added/{name} and announce the change."""
        server.resource(f"behaving://added/{name}", name=name)(_named(name))
        await announce(ctx, "resources")
        return name

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        """Announce that resource `uri` changed, the way its subscribers' era hears it: an event for
        `subscriptions/listen` streams naming it (2026-07-28), a notification on the session (before)."""
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

        await ctx.notify_resource_updated(uri)
        request = ctx.request_context
        if request.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            await request.session.send_resource_updated(uri)
        return uri

    @server.tool()
    async def say(level: str, text: str, ctx: Context) -> str:
        """Log `text` at `level` during the call (2026-07-28: only if the request opted in to it)."""
        await ctx.log(level, text)  # type: ignore[arg-type]
        return text

    @server.tool()
    def open_streams() -> int:
        """How many event streams (GET streams, listen streams) are open now."""
        return STREAMS.open

    @server.tool()
    def end_streams() -> int:
        """End every open event stream cleanly (GET streams, listen streams); return how many.
        The server stays up."""
        return STREAMS.end_all()


def _named(name: str) -> Any:
    def named() -> str:
        return name

    return named


def build_server(args: argparse.Namespace) -> MCPServer[Any]:
    """The SDK import lives here: everything before it runs without paying for it."""
    import anyio
    from mcp.server.mcpserver import MCPServer

    name, version = HOSTILE_SERVER_INFO if args.hostile_names else (args.name, "1.0.0")
    misbehaviour = Misbehaviour(
        args.crash_after_calls,
        args.hang_after_calls,
        args.exit_code,
        args.fail_listing,
        args.crash_after,
        args.late_first_listen,
    )
    server: MCPServer[Any] = MCPServer(
        name=name,
        version=version,
        log_level=args.log_level,
        middleware=[misbehaviour],
        subscriptions=False if args.no_listen else None,
    )

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Sleep without blocking other requests, then answer."""
        await anyio.sleep(seconds)
        return f"slept {seconds}s"

    @server.tool()
    def pid() -> int:
        """Return the server's process id."""
        return os.getpid()

    if args.hostile_names:
        add_hostile_names(server)
    for i in range(args.extra_tools):
        server.add_tool(_extra_tool(i), name=f"tool_{i}", description=f"Extra tool number {i}.")

    @server.prompt()
    def greet(name: str) -> str:
        """Greet someone by name."""
        return f"Hello, {name}!"

    @server.resource("behaving://readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        return "A server that behaves, or misbehaves, as its flags say."

    @server.resource("behaving://items/{item_id}", name="item")
    def item(item_id: str) -> str:
        return f"item {item_id}"

    if args.dynamic:
        add_dynamic_tools(server)
    for alias in args.alias:
        server.add_tool(echo, name=alias, description=f"echo, as {alias!r}.")
    if args.meta_tool:
        from mcp.server.mcpserver import Context

        def meta(ctx: Context) -> dict[str, Any]:
            """Return the request's _meta and the Authorization header it came with (HTTP)."""
            authorization = (ctx.headers or {}).get("authorization")
            return {"meta": dict(ctx.request_context.meta or {}), "authorization": authorization}

        # The SDK evaluates annotations in the module's globals, where Context is not (imported late).
        meta.__annotations__ = {"ctx": Context, "return": dict[str, Any]}
        server.tool()(meta)
    if args.ask_tool:
        _add_ask_tool(server)

    return server


def _add_ask_tool(server: MCPServer[Any]) -> None:
    """`ask(question)`: a 2026-07-28 tool that needs its caller's input (an InputRequiredResult
    with one elicitation), then answers with what the caller said."""
    import mcp_types as types
    from mcp.server.mcpserver import Context

    def ask(question: str, ctx: Context) -> Any:
        """Ask the caller `question`; answer with its reply."""
        answer = (ctx.input_responses or {}).get("question")
        if answer is None:
            schema = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]}
            request = types.ElicitRequest(
                params=types.ElicitRequestFormParams(message=question, requested_schema=schema)  # type: ignore[arg-type]
            )
            return types.InputRequiredResult(input_requests={"question": request}, request_state="asked")
        assert isinstance(answer, types.ElicitResult)
        return f"{answer.action}: {(answer.content or {}).get('reply')} (state {ctx.request_state})"

    ask.__annotations__ = {"question": str, "ctx": Context, "return": Any}
    server.tool()(ask)


def _extra_tool(i: int) -> Any:
    def extra() -> str:
        return f"tool_{i}"

    return extra


def add_hostile_names(server: MCPServer[Any]) -> None:
    """A tool and a prompt under each of HOSTILE_NAMES; each tool answers with its own name."""
    import logging

    from mcp.server.mcpserver.prompts.base import Prompt

    logging.getLogger("mcp.shared.tool_name_validation").setLevel(logging.ERROR)  # 19 warnings: noise
    for name in HOSTILE_NAMES:
        server.add_tool(_named(name), name=name, description="A tool with a hostile name.")
        server.add_prompt(Prompt.from_function(_named(name), name=name, description="A hostile prompt name."))


def _named(name: str) -> Any:
    def answer() -> str:
        return name

    return answer


def add_fault_tools(server: MCPServer[Any], transport: str) -> None:
    """`--fault-tools`: answers that hurt the client rather than the server.

    stdio: call this before the SDK starts serving. The SDK points fd 1 at stderr while it
    serves (so that a stray print cannot corrupt the wire) and writes to a private copy of
    the pipe, so the tools keep their own copy and know the pipe by its inode.
    """
    wire = os.dup(1) if transport == "stdio" else -1
    pipe = (os.fstat(wire).st_dev, os.fstat(wire).st_ino) if transport == "stdio" else None

    @server.tool(structured_output=False)  # the text once, not also as structured content
    def big(megabytes: float) -> str:
        """Return megabytes x 1,000,000 characters."""
        return "x" * int(megabytes * 1_000_000)

    @server.tool()
    def hangup() -> str:
        """Close the stream this call would be answered on; the process lives on."""
        if pipe is not None:
            # Every descriptor on the stdout pipe now points at /dev/null: the client reads
            # EOF, our later writes (this answer too) go nowhere, stdin is still read.
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in _descriptors():
                with contextlib.suppress(OSError):
                    stat = os.fstat(fd)
                    if fd != devnull and (stat.st_dev, stat.st_ino) == pipe:
                        os.dup2(devnull, fd)
        # Over HTTP, HTTPFaults cuts this call's response after its headers.
        return "you should never read this"

    @server.tool()
    def garbage() -> str:
        """stdio: write lines that are not JSON-RPC messages onto the wire, then answer."""
        if pipe is not None:
            for line in _GARBAGE_BYTES:
                os.write(wire, line)
        return "ok"


def _descriptors() -> list[int]:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: the usual range
        return list(range(256))


_TEXT_PLAIN = [(b"content-type", b"text/plain")]


class _HangUp(Exception):
    """Raised after a response's headers: uvicorn then closes the connection mid-body."""


class HTTPFaults:
    """ASGI middleware in front of the SDK's app for the HTTP misbehaviours.

    `--http-500-after-calls N`: once N tool calls were answered, every POST is answered
    500 before the SDK sees it. `--fault-tools`: a POST calling `hangup` gets its response
    headers, then the connection is closed before the body ends.
    """

    def __init__(self, app: ASGIApp, misbehaviour: Misbehaviour, fail_after: int | None, cut: bool) -> None:
        self.app = app
        self.misbehaviour = misbehaviour
        self.fail_after = fail_after
        self.cut = cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.fail_after is not None and self.misbehaviour.calls_answered >= self.fail_after:
            await send({"type": "http.response.start", "status": 500, "headers": _TEXT_PLAIN})
            await send({"type": "http.response.body", "body": b"behaving: --http-500-after-calls\n"})
            return
        if not self.cut:
            await self.app(scope, receive, send)
            return
        body, receive = await _read_body(receive)
        if not _calls_tool(body, "hangup"):
            await self.app(scope, receive, send)
            return
        await _cut_after_headers(self.app, scope, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that replays it to the app."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _calls_tool(body: bytes, tool: str) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(message, dict)
        and message.get("method") == "tools/call"
        and (message.get("params") or {}).get("name") == tool
    )


async def _cut_after_headers(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    import anyio

    headers_sent = anyio.Event()

    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.start":
            await send(message)
            headers_sent.set()
        # the body never leaves

    async with anyio.create_task_group() as tg:
        tg.start_soon(app, scope, receive, headers_only)
        await headers_sent.wait()
        raise _HangUp("hangup: the connection closes in the middle of the response")


def serve_http(server: MCPServer[Any], args: argparse.Namespace, sock: socket.socket | None = None) -> None:
    """Run uvicorn ourselves: MCPServer.run would replace our SIGTERM disposition. `sock`: a
    listening socket to serve on instead of binding one."""
    import anyio
    import uvicorn

    if args.transport == "sse":
        app: ASGIApp = server.sse_app(host=args.host)
    else:
        app = GetStreams(
            server.streamable_http_app(json_response=args.json_response, host=args.host),
            refuse=args.refuse_get_stream,
        )
        if args.also_sse:  # one process, one server, both HTTP transports
            app = _with_sse(app, server.sse_app(host=args.host))
    if args.http_500_after_calls is not None or args.fault_tools:
        misbehaviour = next(m for m in server.middleware if isinstance(m, Misbehaviour))
        app = HTTPFaults(app, misbehaviour, args.http_500_after_calls, cut=args.fault_tools)

    ignore_sigterm = args.ignore_sigterm

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if ignore_sigterm and sig == signal.SIGTERM:
                return
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        # Open SSE streams would otherwise hold a SIGTERM'd server up indefinitely.
        timeout_graceful_shutdown=2,
    )
    anyio.run(Server(config).serve, None if sock is None else [sock])


def _with_sse(streamable: ASGIApp, sse: ASGIApp) -> ASGIApp:
    """`--also-sse`: the SSE transport's paths go to its app, everything else (lifespan too) to
    the streamable-HTTP one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/sse" or path.startswith("/messages/")):
            await sse(scope, receive, send)
        else:
            await streamable(scope, receive, send)

    return app


def respawn(args: argparse.Namespace) -> NoReturn:
    """`--respawn`: import the SDK once, then serve from a forked child and fork a new one as
    soon as it dies: a process manager restarting a crashed server, without the import's second
    or two. The parent holds the listening socket, so the port never refuses a connection: one
    made during a restart waits for the next child, which knows none of the old sessions. With
    `--pidfile`, each child writes its own pid there."""
    import anyio  # noqa: F401 - imported here, paid for once
    import uvicorn  # noqa: F401
    from mcp.server.mcpserver import MCPServer  # noqa: F401

    sock = socket.create_server((args.host, args.port), backlog=128)
    child = 0

    def forward(sig: int, frame: Any) -> None:
        if child:
            os.kill(child, sig)
        os._exit(0)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = os.fork()
        if child == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _die_with_parent()
            if args.pidfile:
                write_pidfile(args.pidfile)
            serve(args, sock)
            os._exit(0)
        os.waitpid(child, 0)
        time.sleep(0.02)  # a child that cannot start at all must not spin the parent


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent goes (PR_SET_PDEATHSIG), so no orphan serves on."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def serve(args: argparse.Namespace, sock: socket.socket | None = None) -> None:
    server = build_server(args)
    if args.fault_tools:
        add_fault_tools(server, args.transport)
    if args.transport == "stdio":
        if args.garbage_stdout:
            sys.stdout.write("".join(line + "\n" for line in _GARBAGE_LINES))
            sys.stdout.flush()
        server.run("stdio")
    else:
        serve_http(server, args, sock)


class GetStreams:
    """ASGI wrapper for the standalone GET streams: refuses them (405), or ends them cleanly on cue.

    Ending one tells the app the client went away (its own clean-up path), then finishes
    the response with a proper last chunk, as a server closing the stream on purpose does.
    """

    def __init__(self, app: Any, *, refuse: bool) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if self.refuse:
            headers = [(b"allow", b"POST, DELETE")]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        ending = STREAMS.ending
        finished = False

        async def receive_until_ended() -> Any:
            result = await STREAMS.until_ended(receive(), {"type": "http.disconnect"}, ending)
            if result["type"] == "http.disconnect" and ending.is_set():
                ended_by_us.append(True)
            return result

        async def tracking_send(message: Any) -> None:
            nonlocal finished
            if ended_by_us:
                return  # the client is gone as far as the app knows; we finish the response
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        ended_by_us: list[bool] = []
        await STREAMS.serve(self.app(scope, receive_until_ended, tracking_send))
        if ended_by_us and not finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pidfile and not args.respawn:  # with --respawn, each serving child writes its own
        write_pidfile(args.pidfile)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.slow_start > 0:
        time.sleep(args.slow_start)
    if args.crash_at_start:
        crash_at_start(args.exit_code)
    if args.hang_at_initialize:
        hang_at_initialize(args)
    if args.crash_at_initialize:
        crash_at_initialize(args)
    if args.respawn:
        respawn(args)
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
