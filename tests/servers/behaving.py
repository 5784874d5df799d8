"""A real MCP server that behaves, or misbehaves, as its flags say. Used by the tests.

Run it as ``python tests/servers/behaving.py [options]``; ``--help`` lists the flags and
``tests/servers/README.md`` describes each misbehaviour and exactly when it triggers.

Start-up misbehaviours (pidfile, SIGTERM, slow start, crash, hang) run before the MCP
SDK is imported: the import costs most of the spawn time, and a crashing or hanging
server should fail fast and cheaply, as a real one missing a dependency would.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import Context, MCPServer

__all__ = ["main", "parse_args"]

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
        "--fail-listing", action="store_true", help="answer prompts/list and resources/list with an error"
    )
    args = p.parse_args(argv)
    for flag in ("extra_tools", "crash_after_calls", "hang_after_calls"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            p.error(f"--{flag.replace('_', '-')} must be >= 0")
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


def block_forever() -> NoReturn:
    # time.sleep, not an await: a blocked event loop answers nothing, pings included.
    while True:
        time.sleep(3600)


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
    ) -> None:
        self.fail_listing = fail_listing
        self.crash_after_calls = crash_after_calls
        self.hang_after_calls = hang_after_calls
        self.exit_code = exit_code
        self.calls_arrived = 0
        self.calls_answered = 0

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if self.hang_after_calls is not None and self.calls_answered >= self.hang_after_calls:
            done = self.calls_answered
            sys.stderr.write(f"behaving: hanging after {done} tool calls ({ctx.method} unanswered)\n")
            sys.stderr.flush()
            block_forever()
        if ctx.method == "subscriptions/listen":
            return await STREAMS.serve(STREAMS.until_ended(call_next(ctx), listen_closed(ctx)))
        if self.fail_listing and ctx.method in ("prompts/list", "resources/list"):
            from mcp.shared.exceptions import MCPError
            from mcp_types import INTERNAL_ERROR

            raise MCPError(INTERNAL_ERROR, f"{ctx.method} is broken on purpose")
        if ctx.method != "tools/call":
            return await call_next(ctx)
        self.calls_arrived += 1
        if self.crash_after_calls is not None and self.calls_arrived > self.crash_after_calls:
            n, code = self.calls_arrived, self.exit_code
            sys.stderr.write(f"behaving: crashing on tool call {n} (exit {code})\n")
            sys.stderr.flush()
            # os._exit: no cleanup, no flush of anything still queued, like a real crash.
            os._exit(code)
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

    misbehaviour = Misbehaviour(
        args.crash_after_calls, args.hang_after_calls, args.exit_code, args.fail_listing
    )
    server: MCPServer[Any] = MCPServer(
        name=args.name,
        version="1.0.0",
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
    return server


def _extra_tool(i: int) -> Any:
    def extra() -> str:
        return f"tool_{i}"

    return extra


def serve_http(server: MCPServer[Any], args: argparse.Namespace) -> None:
    """Run uvicorn ourselves: MCPServer.run would replace our SIGTERM disposition."""
    import anyio
    import uvicorn

    if args.transport == "sse":
        app = server.sse_app(host=args.host)
    else:
        app = GetStreams(
            server.streamable_http_app(json_response=args.json_response, host=args.host),
            refuse=args.refuse_get_stream,
        )

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
    anyio.run(Server(config).serve)


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
    if args.pidfile:
        write_pidfile(args.pidfile)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.slow_start > 0:
        time.sleep(args.slow_start)
    if args.crash_at_start:
        crash_at_start(args.exit_code)
    if args.hang_at_initialize:
        hang_at_initialize(args)

    server = build_server(args)
    if args.transport == "stdio":
        if args.garbage_stdout:
            sys.stdout.write("".join(line + "\n" for line in _GARBAGE_LINES))
            sys.stdout.flush()
        server.run("stdio")
    else:
        serve_http(server, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
