"""Error classification: foreign exceptions become one of a few `error_type` strings, by type."""

from __future__ import annotations

import asyncio
import errno

import anyio
import httpx2
import mcp_types as types
import pydantic
import pytest
from mcp.shared.exceptions import MCPError

from sidecar.errors import (
    ServerUnavailable,
    SidecarError,
    StartupError,
    ToolCallError,
    ToolCallTimeout,
    answered_by_server,
    describe_error,
    is_internal_error,
    is_tool_error,
    leaf_exceptions,
)
from sidecar.state import IllegalTransition

# describe_error asks anyio for the backend's cancellation class, so it needs a running loop.
pytestmark = pytest.mark.anyio


def _validation_error() -> pydantic.ValidationError:
    try:
        pydantic.TypeAdapter(int).validate_python("not a number")
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/mcp")

CASES: list[tuple[str, BaseException, str, str]] = [
    ("timeout-bare", TimeoutError(), "timeout", "timed out"),
    ("timeout-text", TimeoutError("deadline passed"), "timeout", "deadline passed"),
    ("mcp-closed", MCPError(-32000, "Connection closed"), "closed", "connection closed"),
    ("mcp-timeout", MCPError(-32001, "Request timed out"), "timeout", "request timed out"),
    ("mcp-other", MCPError(-32602, "Invalid params"), "-32602", "MCP error -32602: Invalid params"),
    ("mcp-with-data", MCPError(-32603, "Internal", data={"x": 1}), "-32603", "MCP error -32603: Internal"),
    ("mcp-app-code", MCPError(4711, "Custom"), "_OTHER", "MCP error 4711: Custom"),
    ("mcp-reserved-edge", MCPError(-32768, "Edge"), "-32768", "MCP error -32768: Edge"),
    ("unavailable", ServerUnavailable("fs", "dropped"), "unavailable", "dropped"),
    ("tool-call-error", ToolCallError("fs", "read", "closed", "gone"), "closed", "fs/read: gone"),
    ("tool-call-timeout", ToolCallTimeout("fs", "read", "timeout", "slow"), "timeout", "fs/read: slow"),
    (
        "httpx-connect",
        httpx2.ConnectError("Connection refused"),
        "connection_refused",
        "cannot connect: Connection refused",
    ),
    ("httpx-timeout", httpx2.ConnectTimeout("slow"), "timeout", "HTTP timeout: ConnectTimeout"),
    ("httpx-read-timeout", httpx2.ReadTimeout("slow"), "timeout", "HTTP timeout: ReadTimeout"),
    (
        "httpx-status",
        httpx2.HTTPStatusError("bad", request=_REQUEST, response=httpx2.Response(503, request=_REQUEST)),
        "http_status",
        "HTTP 503 from http://127.0.0.1:9/mcp",
    ),
    ("httpx-transport", httpx2.ReadError("reset"), "transport_error", "ReadError: reset"),
    (
        "not-found",
        FileNotFoundError(errno.ENOENT, "No such file or directory", "no-such-server"),
        "spawn_error",
        "command not found: no-such-server",
    ),
    (
        "permission",
        PermissionError(errno.EACCES, "Permission denied", "/srv/tool"),
        "spawn_error",
        "permission denied: /srv/tool",
    ),
    (
        "not-found-no-filename",
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        "spawn_error",
        "[Errno 2] No such file or directory",
    ),
    ("anyio-closed", anyio.ClosedResourceError(), "closed", "connection closed"),
    ("anyio-broken", anyio.BrokenResourceError(), "closed", "connection closed"),
    ("anyio-eof", anyio.EndOfStream(), "closed", "connection closed"),
    (
        "os-error",
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        "transport_error",
        f"ConnectionResetError: [Errno {errno.ECONNRESET}] reset by peer",
    ),
    ("value", ValueError("bad json"), "protocol_error", "ValueError: bad json"),
    ("value-bare", ValueError(), "protocol_error", "ValueError"),
    ("other", RuntimeError("odd"), "error", "RuntimeError: odd"),
    ("other-bare", RuntimeError(), "error", "RuntimeError"),
]


@pytest.mark.parametrize(("exc", "error_type", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_describe_error(exc: BaseException, error_type: str, message: str) -> None:
    assert describe_error(exc) == (error_type, message)


async def test_pydantic_validation_error_is_a_protocol_error() -> None:
    error_type, message = describe_error(_validation_error())
    assert error_type == "protocol_error"
    assert message.startswith("ValidationError: ")


async def test_nested_group_prefers_the_real_error_over_cancellation() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    group = BaseExceptionGroup(
        "outer",
        [
            BaseExceptionGroup("inner", [cancelled(), GeneratorExit()]),
            ExceptionGroup("deeper", [httpx2.ConnectError("Connection refused")]),
        ],
    )
    assert describe_error(group) == ("connection_refused", "cannot connect: Connection refused")


async def test_group_picks_the_first_real_error_in_order() -> None:
    group = ExceptionGroup("g", [ValueError("first"), TimeoutError("second")])
    assert describe_error(group) == ("protocol_error", "ValueError: first")


async def test_group_of_only_cancellations_falls_back_to_the_first_leaf() -> None:
    group = BaseExceptionGroup("g", [asyncio.CancelledError(), GeneratorExit()])
    assert describe_error(group) == ("error", "CancelledError")


async def test_leaf_exceptions_flattens_in_order() -> None:
    a, b, c, d = ValueError("a"), KeyError("b"), TimeoutError("c"), OSError("d")
    group = ExceptionGroup("outer", [a, ExceptionGroup("mid", [b, ExceptionGroup("in", [c])]), d])
    assert leaf_exceptions(group) == [a, b, c, d]
    assert leaf_exceptions(a) == [a]


def test_describe_error_without_an_event_loop() -> None:
    assert describe_error(ValueError("x")) == ("protocol_error", "ValueError: x")


async def test_sidecar_errors() -> None:
    startup = StartupError({"b": "boom", "a": "refused"})
    assert startup.failures == {"b": "boom", "a": "refused"}
    assert str(startup) == "critical servers failed at startup: a: refused; b: boom"

    unavailable = ServerUnavailable("time", "failed")
    assert (unavailable.server, unavailable.reason) == ("time", "failed")
    assert str(unavailable) == "server 'time' is unavailable: failed"

    timeout = ToolCallTimeout("time", "now", "timeout", "no answer within 5s")
    assert (timeout.server, timeout.tool, timeout.error_type) == ("time", "now", "timeout")
    assert str(timeout) == "time/now: no answer within 5s"

    for exc_class in (StartupError, ServerUnavailable, ToolCallError, ToolCallTimeout):
        assert issubclass(exc_class, SidecarError)
    assert issubclass(ToolCallTimeout, ToolCallError)


@pytest.mark.parametrize(
    ("exc", "answered"),
    [
        (MCPError(-32602, "Invalid params"), True),
        (MCPError(4711, "Custom"), True),
        (ExceptionGroup("g", [MCPError(-32601, "Method not found")]), True),
        (MCPError(-32000, "Connection closed"), False),  # the SDK's own: the server said nothing
        (MCPError(-32001, "Request timed out"), False),
        (TimeoutError(), False),
        (httpx2.ConnectError("refused"), False),
    ],
)
def test_answered_by_server_only_for_errors_the_server_sent(exc: BaseException, answered: bool) -> None:
    assert answered_by_server(exc) is answered


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("k"),
        AttributeError("a"),
        TypeError("t"),
        AssertionError(),
        ZeroDivisionError(),
        IllegalTransition("active -> connecting"),
        ExceptionGroup("g", [OSError("refused"), IndexError("i")]),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_programming_errors_are_ours(exc: BaseException) -> None:
    assert is_internal_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        MCPError(-32000, "Connection closed"),
        OSError("refused"),
        TimeoutError(),
        ValueError("not JSON"),
        RuntimeError("Unsupported protocol version from the server"),
        httpx2.ConnectError("refused"),
        anyio.BrokenResourceError(),
        ExceptionGroup("g", [httpx2.ReadError("reset")]),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_server_and_transport_failures_are_not_ours(exc: BaseException) -> None:
    assert not is_internal_error(exc)


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (types.CallToolResult(content=[], is_error=True), True),
        (types.CallToolResult(content=[]), False),
        ({"content": [], "isError": True}, True),  # passed through as the server sent it
        ({"content": [], "isError": False}, False),
        ({"content": []}, False),  # absent: not an error
        ({"content": [], "isError": "true"}, False),  # not a boolean: not what the spec calls an error
        ({"content": [], "is_error": True}, False),  # the wire name is isError
        (object(), False),  # no is_error at all
    ],
)
def test_is_tool_error(result: object, error: bool) -> None:
    assert is_tool_error(result) is error
