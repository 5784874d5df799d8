"""The metrics of the OpenTelemetry MCP semantic conventions, decided from lifecycle events. Pure.

    mcp.client.operation.duration   every request the sidecar sends upstream: `initialize` or
                                    `server/discover`, `tools/list`, the `ping` / `server/discover`
                                    probe, `tools/call` (listen streams are not requests)
    mcp.client.session.duration     an upstream connection, when it ends
    mcp.server.operation.duration   a request the gateway answered (the gateway reports it)
    mcp.server.session.duration     a gateway session, when it ends (the gateway reports it)

All are histograms in seconds with the conventions' bucket advice. Attributes are few
and bounded: the method, `error.type` (the vocabulary of `sidecar.errors`), the tool for
`tools/call`, the negotiated protocol version, the transport, and the configured server
name (`mcp_sidecar.server`, as on spans). Never arguments, ids or session ids.

`ClientConventions` turns events into `Observation`s; the Prometheus view and the OTLP
export both record exactly those, so the two exports carry the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from ..events import (
    Connected,
    ConnectFailed,
    HealthCheckFailed,
    HealthCheckPassed,
    LifecycleEvent,
    Lost,
    ToolCalled,
)
from ..state import ServerState

__all__ = [
    "BUCKETS",
    "CLIENT_OPERATION",
    "CLIENT_SESSION",
    "CONVENTION_METRICS",
    "SERVER_ATTRIBUTE",
    "SERVER_OPERATION",
    "SERVER_SESSION",
    "Attributes",
    "ClientConventions",
    "Observation",
    "client_operation",
    "network_attributes",
    "prometheus_name",
    "server_operation",
    "server_session",
]

CLIENT_OPERATION = "mcp.client.operation.duration"
CLIENT_SESSION = "mcp.client.session.duration"
SERVER_OPERATION = "mcp.server.operation.duration"
SERVER_SESSION = "mcp.server.session.duration"
CONVENTION_METRICS = {
    CLIENT_OPERATION: "Duration of an MCP request the sidecar sent upstream, until its response.",
    CLIENT_SESSION: "Duration of an upstream MCP connection, from connected to its end.",
    SERVER_OPERATION: "Duration of an MCP request the gateway received, until its response.",
    SERVER_SESSION: "Duration of a gateway MCP session, from its start to its end.",
}
# The conventions' ExplicitBucketBoundaries advice, in seconds.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SERVER_ATTRIBUTE = "mcp_sidecar.server"  # the configured name, as on every span

# (key, value) pairs in a fixed order: hashable, so one tuple is one series.
Attributes = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """One value for one histogram series."""

    metric: str  # one of CONVENTION_METRICS
    value: float  # seconds
    attributes: Attributes


def prometheus_name(metric: str) -> str:
    """The name on `/metrics`, as Prometheus translates an OTLP histogram in seconds."""
    return metric.replace(".", "_") + "_seconds"


def network_attributes(transport: str) -> Attributes:
    """`network.transport`: pipe for stdio, tcp for HTTP (and SSE)."""
    return (("network.transport", "pipe" if transport == "stdio" else "tcp"),)


def _operation(
    method: str,
    error_type: str | None,
    tool: str | None,
    protocol_version: str | None,
    network: Attributes,
) -> Attributes:
    attributes: list[tuple[str, str]] = [("mcp.method.name", method)]
    if error_type is not None:
        attributes.append(("error.type", error_type))
    if tool is not None:
        attributes.append(("gen_ai.tool.name", tool))
    if protocol_version:
        attributes.append(("mcp.protocol.version", protocol_version))
    return (*attributes, *network)


def client_operation(
    server: str,
    transport: str,
    method: str,
    duration: float,
    *,
    error_type: str | None = None,
    tool: str | None = None,
    protocol_version: str | None = None,
) -> Observation:
    """One request the sidecar sent to `server`."""
    attributes = _operation(method, error_type, tool, protocol_version, network_attributes(transport))
    return Observation(CLIENT_OPERATION, duration, (*attributes, (SERVER_ATTRIBUTE, server)))


def server_operation(
    method: str,
    duration: float,
    *,
    error_type: str | None = None,
    tool: str | None = None,
    protocol_version: str | None = None,
    transport: str = "streamable-http",
) -> Observation:
    """One request the gateway answered; `tool` is the name the caller used, for `tools/call`."""
    attributes = _operation(method, error_type, tool, protocol_version, network_attributes(transport))
    return Observation(SERVER_OPERATION, duration, attributes)


def server_session(
    duration: float,
    *,
    protocol_version: str | None = None,
    error_type: str | None = None,
    transport: str = "streamable-http",
) -> Observation:
    """One gateway session that ended; `error_type` only when it ended by an error."""
    attributes: list[tuple[str, str]] = []
    if error_type is not None:
        attributes.append(("error.type", error_type))
    if protocol_version:
        attributes.append(("mcp.protocol.version", protocol_version))
    return Observation(SERVER_SESSION, duration, (*attributes, *network_attributes(transport)))


@dataclass(slots=True)
class _Session:
    protocol_version: str | None
    since: float  # unix time of the `connected` event


class ClientConventions:
    """Turns one server's lifecycle events into client observations; feed every event, in order.

    It remembers, per server, the connection under way (protocol version, since when), so
    probes and tool calls carry the version and the session's end can be measured.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def observe(self, event: LifecycleEvent) -> tuple[Observation, ...]:
        server, transport = event.server, event.transport
        session = self._sessions.get(server)
        version = session.protocol_version if session is not None else None
        match event:
            case Connected(phases=phases, protocol_version=protocol_version):
                self._sessions[server] = _Session(protocol_version, event.ts)
                return tuple(
                    client_operation(server, transport, phase.name, phase.ended - phase.started,
                                     error_type=phase.error_type, protocol_version=protocol_version)
                    for phase in phases
                )  # fmt: skip
            case ConnectFailed(phases=phases):
                self._sessions.pop(server, None)
                return tuple(
                    client_operation(server, transport, phase.name, phase.ended - phase.started,
                                     error_type=phase.error_type)
                    for phase in phases
                )  # fmt: skip
            case HealthCheckPassed() | HealthCheckFailed():
                method = event.method or _probe_method(version)
                error_type = event.error_type if isinstance(event, HealthCheckFailed) else None
                return (
                    client_operation(server, transport, method, event.duration,
                                     error_type=error_type, protocol_version=version),
                )  # fmt: skip
            case ToolCalled(tool=tool, duration=duration, error_type=error_type):
                return (
                    client_operation(server, transport, "tools/call", duration,
                                     error_type=error_type, tool=tool, protocol_version=version),
                )  # fmt: skip
            case Lost(reason=reason, connected_for=connected_for):
                self._sessions.pop(server, None)
                return (_session(server, transport, connected_for, reason, version),)
        if event.previous is ServerState.ACTIVE and event.state is not ServerState.ACTIVE:
            # Ended on purpose (stop, drop, reconnect, reload): no `lost`, and no error; or by
            # a bug of the sidecar's own (`internal_error`).
            self._sessions.pop(server, None)
            if session is not None:
                error_type = "internal_error" if event.kind == "internal_error" else None
                return (_session(server, transport, max(event.ts - session.since, 0.0), error_type, version),)
        return ()


def _probe_method(protocol_version: str | None) -> str:
    """What the probe sent, for events that do not say: `ping` exists only in the handshake era."""
    return (
        "server/discover"
        if protocol_version and protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS
        else "ping"
    )


def _session(
    server: str, transport: str, duration: float, error_type: str | None, protocol_version: str | None
) -> Observation:
    attributes: list[tuple[str, str]] = []
    if error_type is not None:
        attributes.append(("error.type", error_type))
    if protocol_version:
        attributes.append(("mcp.protocol.version", protocol_version))
    attributes += network_attributes(transport)
    return Observation(CLIENT_SESSION, duration, (*attributes, (SERVER_ATTRIBUTE, server)))
