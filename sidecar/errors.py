"""Exceptions of mcp-sidecar, and the translation of foreign errors into short, typed ones.

    SidecarError
     ├── StartupError          strict mode: a critical server did not come up
     ├── ServerUnavailable     the server is unknown, or not active right now
     ├── ServerFailure         why a server is down: its last error (`MCPServerManager.errors`)
     └── ToolCallError         a routed call failed below MCP (deadline, lost connection)
          └── ToolCallTimeout

Configuration problems raise `sidecar.config.ConfigError`. Foreign errors (the mcp SDK,
httpx2, OS errors, exception groups from transports) are classified by type, never
by their text, into one of a small fixed set of `error_type` strings. That string is the
`error.type` of spans, the `error_type` label of metrics and the `error_type` of log lines
alike; it follows the OpenTelemetry MCP conventions (README, "Error types"):

    "-32602" ...        a JSON-RPC error the server answered, its code as a string (codes
                        outside the reserved range -32768..-32000 are "_OTHER": bounded)
    tool_error          a tool result with `isError` set (decided by the caller, not here)
    timeout             no answer within a deadline (ours, the SDK's, or HTTP's)
    closed              the connection ended under the request
    connection_refused  http_status  transport_error  spawn_error  protocol_error
    unavailable         the server is unknown or not active: nothing was sent
    error               anything else
"""

from __future__ import annotations

import errno

import anyio
import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT

from .state import IllegalTransition

__all__ = [
    "ServerFailure",
    "ServerUnavailable",
    "SidecarError",
    "StartupError",
    "ToolCallError",
    "ToolCallTimeout",
    "answered_by_server",
    "describe_error",
    "is_internal_error",
    "is_tool_error",
    "jsonrpc_error_type",
    "leaf_exceptions",
]

# The JSON-RPC reserved range: codes in it are few and well known; any other code a server
# sends would be a new label value per code (a server could mint one per call).
_RESERVED_CODES = range(-32768, -32000 + 1)
_SDK_LOCAL_CODES = (CONNECTION_CLOSED, REQUEST_TIMEOUT)  # made by the client SDK, never sent by a server


class SidecarError(Exception):
    """Root of every error mcp-sidecar raises on purpose."""


class StartupError(SidecarError):
    """`strict` is on and critical servers were not active when startup finished."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        detail = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
        super().__init__(f"critical servers failed at startup: {detail}")


class ServerUnavailable(SidecarError):
    """A call named a server that is unknown or not active; raised at once, never after a wait."""

    def __init__(self, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason
        super().__init__(f"server {server!r} is unavailable: {reason}")


class ServerFailure(SidecarError):
    """Why a server is down now: the text is its last error (redacted), as its status has it.

    Not raised by the sidecar: `MCPServerManager.errors` maps each failed or dropped server's
    name to one, as an exception, the way libraries report failed connects.
    """

    def __init__(self, server: str, state: str, error_type: str | None, message: str) -> None:
        self.server = server
        self.state = state  # reconnecting | failed | dropped
        self.error_type = error_type  # exited, timeout, connection_refused ... (see describe_error)
        super().__init__(message)


class ToolCallError(SidecarError):
    """A tool call failed below the MCP layer: the connection died or the deadline passed."""

    def __init__(self, server: str, tool: str, error_type: str, message: str) -> None:
        self.server = server
        self.tool = tool
        self.error_type = error_type
        super().__init__(f"{server}/{tool}: {message}")


class ToolCallTimeout(ToolCallError):
    """The call did not answer within its deadline."""


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """Flatten exception groups (transports raise them) into their leaves, in order."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_exceptions(inner))
        return leaves
    return [exc]


def _most_telling(exc: BaseException) -> BaseException:
    """The leaf that explains a group best: a real error before cancellation noise."""
    leaves = leaf_exceptions(exc)
    # Cancellation and GeneratorExit are BaseExceptions: any Exception says more.
    return next((leaf for leaf in leaves if isinstance(leaf, Exception)), leaves[0])


def jsonrpc_error_type(code: int) -> str:
    """The `error_type` of a JSON-RPC error code a server answered with: the code as a string."""
    return str(code) if code in _RESERVED_CODES else "_OTHER"


def answered_by_server(exc: BaseException) -> bool:
    """True when `exc` is a JSON-RPC error the server sent (not the SDK's own closed or timeout)."""
    leaf = _most_telling(exc)
    return isinstance(leaf, MCPError) and leaf.code not in _SDK_LOCAL_CODES


def describe_error(exc: BaseException) -> tuple[str, str]:
    """Classify an exception into (`error_type`, one-line message) for status, logs, spans and metrics."""
    leaf = _most_telling(exc)
    if isinstance(leaf, ServerUnavailable):
        return "unavailable", leaf.reason
    if isinstance(leaf, ToolCallError):
        return leaf.error_type, str(leaf)
    if isinstance(leaf, TimeoutError):
        return "timeout", str(leaf) or "timed out"
    if isinstance(leaf, MCPError):
        if leaf.code == CONNECTION_CLOSED:
            return "closed", "connection closed"
        if leaf.code == REQUEST_TIMEOUT:
            return "timeout", "request timed out"
        return jsonrpc_error_type(leaf.code), f"MCP error {leaf.code}: {leaf.message}"
    if isinstance(leaf, httpx2.TimeoutException):
        return "timeout", f"HTTP timeout: {type(leaf).__name__}"
    if isinstance(leaf, httpx2.ConnectError):
        return "connection_refused", f"cannot connect: {leaf}"
    if isinstance(leaf, httpx2.HTTPStatusError):
        return "http_status", f"HTTP {leaf.response.status_code} from {leaf.request.url}"
    if isinstance(leaf, httpx2.TransportError):
        return "transport_error", f"{type(leaf).__name__}: {leaf}"
    if isinstance(leaf, FileNotFoundError | PermissionError) and leaf.filename is not None:
        what = "command not found" if isinstance(leaf, FileNotFoundError) else "permission denied"
        return "spawn_error", f"{what}: {leaf.filename}"
    if isinstance(leaf, NotADirectoryError) or (isinstance(leaf, OSError) and leaf.errno == errno.ENOENT):
        return "spawn_error", str(leaf)
    if isinstance(leaf, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return "closed", "connection closed"
    if isinstance(leaf, OSError):
        return "transport_error", f"{type(leaf).__name__}: {leaf}"
    text = str(leaf)
    return "protocol_error" if isinstance(leaf, ValueError) else "error", (
        f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__
    )


# Exceptions that mean a bug in our code (or in how we use a library), never a server's fault.
# Server and transport failures arrive as MCPError, OSError, httpx2 errors, anyio stream errors,
# TimeoutError, ValueError (malformed messages) or RuntimeError (the SDK's protocol complaints).
_OUR_BUGS = (
    AttributeError,
    TypeError,
    NameError,
    LookupError,
    AssertionError,
    ArithmeticError,
    RecursionError,
    NotImplementedError,
    IllegalTransition,
)


def is_internal_error(exc: BaseException) -> bool:
    """True when `exc` (or any leaf of its group) is a programming error of ours, by type."""
    return any(isinstance(leaf, _OUR_BUGS) for leaf in leaf_exceptions(exc))


def is_tool_error(result: object) -> bool:
    """Whether a tool call's result is the tool reporting an error: a `CallToolResult` with
    `is_error`, or (passed through as the server sent it) a JSON object with `"isError": true`."""
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True
