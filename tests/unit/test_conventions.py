"""The MCP convention metrics decided from events, without I/O: which observations, with which attributes."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.events import (
    Connected,
    ConnectFailed,
    Dropped,
    HealthCheckFailed,
    HealthCheckPassed,
    InternalError,
    LifecycleEvent,
    Lost,
    Phase,
    ReconnectAttempt,
    Stopped,
    ToolCalled,
    ToolsChanged,
)
from sidecar.state import ServerState as S
from sidecar.telemetry.conventions import (
    BUCKETS,
    CLIENT_OPERATION,
    CLIENT_SESSION,
    SERVER_OPERATION,
    SERVER_SESSION,
    ClientConventions,
    Observation,
    prometheus_name,
    server_operation,
    server_session,
)

LEGACY, MODERN = "2025-11-25", "2026-07-28"


def event(kind: type[LifecycleEvent], state: S = S.ACTIVE, previous: S = S.ACTIVE, **fields: Any) -> Any:
    common = {"server": "fs", "transport": "stdio", "criticality": "critical", "ts": 100.0}
    return kind(**{**common, "state": state, "previous": previous, **fields})


def connected(version: str = LEGACY, ts: float = 100.0, **fields: Any) -> Connected:
    phases = (Phase("initialize", 99.0, 99.25), Phase("tools/list", 99.25, 99.5))
    return event(Connected, S.ACTIVE, S.CONNECTING, ts=ts, attempt=0, duration=0.5, protocol_version=version,
                 server_name="fs", server_version="1", tools=("read",), phases=phases, **fields)  # fmt: skip


def attrs(observation: Observation) -> dict[str, str]:
    return dict(observation.attributes)


def test_the_conventions_bucket_advice_and_names() -> None:
    assert BUCKETS == (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
    assert prometheus_name(CLIENT_OPERATION) == "mcp_client_operation_duration_seconds"
    assert prometheus_name(SERVER_SESSION) == "mcp_server_session_duration_seconds"


def test_a_connect_is_one_operation_per_call_with_the_negotiated_version() -> None:
    found = ClientConventions().observe(connected())
    assert [(o.metric, o.value) for o in found] == [(CLIENT_OPERATION, 0.25), (CLIENT_OPERATION, 0.25)]
    assert attrs(found[0]) == {
        "mcp.method.name": "initialize",
        "mcp.protocol.version": LEGACY,
        "network.transport": "pipe",
        "mcp_sidecar.server": "fs",
    }
    assert attrs(found[1])["mcp.method.name"] == "tools/list"


def test_a_failed_connect_marks_the_call_that_failed() -> None:
    phases = (Phase("initialize", 1.0, 1.5), Phase("tools/list", 1.5, 3.0, "-32603"))
    found = ClientConventions().observe(
        event(
            ConnectFailed,
            S.RECONNECTING,
            S.CONNECTING,
            attempt=0,
            duration=2.0,
            error="x",
            error_type="-32603",
            phases=phases,
        )
    )
    assert [attrs(o).get("error.type") for o in found] == [None, "-32603"]
    assert all("mcp.protocol.version" not in attrs(o) for o in found)  # none was negotiated
    spawn_failed = event(ConnectFailed, S.RECONNECTING, S.CONNECTING, attempt=0, duration=0.01, error="x",
                         error_type="spawn_error")  # fmt: skip
    assert ClientConventions().observe(spawn_failed) == ()  # no request was sent


@pytest.mark.parametrize(
    ("version", "method", "expected"),
    [
        (LEGACY, "ping", "ping"),
        (MODERN, "server/discover", "server/discover"),
        (LEGACY, None, "ping"),  # an event from before probes named their method: from the version
        (MODERN, None, "server/discover"),
    ],
)
def test_probes_are_operations_of_the_method_they_sent(
    version: str, method: str | None, expected: str
) -> None:
    conventions = ClientConventions()
    conventions.observe(connected(version))
    (passed,) = conventions.observe(event(HealthCheckPassed, duration=0.003, method=method))
    assert attrs(passed) == {
        "mcp.method.name": expected,
        "mcp.protocol.version": version,
        "network.transport": "pipe",
        "mcp_sidecar.server": "fs",
    }
    (failed,) = conventions.observe(
        event(
            HealthCheckFailed,
            duration=2.0,
            error="slow",
            error_type="probe_timeout",
            consecutive_failures=1,
            method=method,
        )
    )
    assert (failed.value, attrs(failed)["error.type"]) == (2.0, "probe_timeout")


def test_a_tool_call_carries_the_tool_and_its_error_type() -> None:
    conventions = ClientConventions()
    conventions.observe(connected())
    (ok,) = conventions.observe(event(ToolCalled, tool="read", duration=0.02, error_type=None))
    assert attrs(ok) == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "read",
        "mcp.protocol.version": LEGACY,
        "network.transport": "pipe",
        "mcp_sidecar.server": "fs",
    }
    (bad,) = conventions.observe(event(ToolCalled, tool="read", duration=0.02, error_type="-32602"))
    assert attrs(bad)["error.type"] == "-32602"


def test_a_lost_session_has_its_duration_and_reason() -> None:
    conventions = ClientConventions()
    conventions.observe(connected())
    (session,) = conventions.observe(
        event(Lost, S.RECONNECTING, S.ACTIVE, reason="exited", error="x", connected_for=42.0)
    )
    assert (session.metric, session.value) == (CLIENT_SESSION, 42.0)
    assert attrs(session) == {
        "error.type": "exited",
        "mcp.protocol.version": LEGACY,
        "network.transport": "pipe",
        "mcp_sidecar.server": "fs",
    }
    # The next events of the outage end no session.
    assert conventions.observe(event(ReconnectAttempt, S.RECONNECTING, S.RECONNECTING, attempt=1)) == ()


@pytest.mark.parametrize(
    "ending",
    [
        event(Stopped, S.STOPPED, S.ACTIVE, ts=130.0),
        event(Dropped, S.DROPPED, S.ACTIVE, ts=130.0, reason="manual"),
        event(ReconnectAttempt, S.RECONNECTING, S.ACTIVE, ts=130.0, attempt=1),
    ],
    ids=["stopped", "dropped", "reconnect"],
)
def test_a_session_ended_on_purpose_has_no_error(ending: LifecycleEvent) -> None:
    conventions = ClientConventions()
    conventions.observe(connected(ts=100.0))
    (session,) = conventions.observe(ending)
    assert (session.metric, session.value) == (CLIENT_SESSION, 30.0)
    assert "error.type" not in attrs(session)
    assert conventions.observe(event(Stopped, S.STOPPED, S.DROPPED, ts=140.0)) == ()  # ended once


def test_events_that_send_nothing_observe_nothing() -> None:
    conventions = ClientConventions()
    conventions.observe(connected())
    assert conventions.observe(event(ToolsChanged, tools=("read",))) == ()
    # A server whose connect the view never saw: no session to end.
    assert ClientConventions().observe(event(Stopped, S.STOPPED, S.ACTIVE)) == ()


def test_http_servers_are_tcp_and_names_are_bounded() -> None:
    conventions = ClientConventions()
    conventions.observe(connected())
    web = event(ToolCalled, transport="streamable-http", tool="read", duration=0.1, error_type=None)
    (found,) = conventions.observe(web)
    assert attrs(found)["network.transport"] == "tcp"
    assert not any(key.startswith(("jsonrpc", "mcp.session")) for key in attrs(found))


def test_the_gateway_side_observations() -> None:
    call = server_operation(
        "tools/call", 0.05, error_type="tool_error", tool="fs__read", protocol_version=MODERN
    )
    assert call.metric == SERVER_OPERATION
    assert attrs(call) == {
        "mcp.method.name": "tools/call",
        "error.type": "tool_error",
        "gen_ai.tool.name": "fs__read",
        "mcp.protocol.version": MODERN,
        "network.transport": "tcp",
    }
    session = server_session(600.0, protocol_version=LEGACY)
    assert (session.metric, attrs(session)) == (
        SERVER_SESSION,
        {"mcp.protocol.version": LEGACY, "network.transport": "tcp"},
    )


def test_a_session_ended_by_a_bug_of_ours_says_so() -> None:
    conventions = ClientConventions()
    conventions.observe(connected(ts=100.0))
    bug = event(InternalError, S.RECONNECTING, S.ACTIVE, ts=110.0, error="KeyError: 'x'", traceback="...")
    (session,) = conventions.observe(bug)
    assert (session.value, attrs(session)["error.type"]) == (10.0, "internal_error")
