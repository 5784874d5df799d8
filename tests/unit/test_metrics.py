"""`SidecarMetrics` without I/O: statuses and events in, an exposition that the library parses out."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

import sidecar
from sidecar.events import (
    Connected,
    ConnectFailed,
    HealthCheckFailed,
    HealthCheckPassed,
    LifecycleEvent,
    Lost,
    Phase,
    ReconnectAttempt,
    ToolCalled,
)
from sidecar.state import ServerState, ServerStatus
from sidecar.telemetry.conventions import CLIENT_OPERATION, Observation
from sidecar.telemetry.metrics import DISCONNECT_REASONS, SidecarMetrics, wants_openmetrics

A = ServerStatus(
    name="alpha",
    transport="stdio",
    criticality="critical",
    state=ServerState.ACTIVE,
    since=100.0,
    tools=("read", "write"),
    protocol_version="2025-11-25",
    server_name="fs",
    server_version="1.2",
)
B = ServerStatus(
    name="beta", transport="sse", criticality="optional", state=ServerState.CONNECTING, since=50.0
)


def event(kind: type[LifecycleEvent], server: str = "alpha", **fields: Any) -> LifecycleEvent:
    common = {"transport": "stdio", "criticality": "critical", "ts": 0.0}
    states = {"state": ServerState.ACTIVE, "previous": ServerState.ACTIVE}
    return kind(server=server, **common, **states, **fields)


def samples(metrics: SidecarMetrics, openmetrics: bool = False) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.render(openmetrics)
    assert content_type.startswith(
        "application/openmetrics-text" if openmetrics else "text/plain; version=0.0.4"
    )
    families = (parse_openmetrics if openmetrics else parse_text)(body.decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def get(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize("openmetrics", [False, True])
def test_every_server_has_its_series_before_any_event(openmetrics: bool) -> None:
    found = samples(SidecarMetrics(lambda: [A, B]), openmetrics)
    for status in (A, B):
        name = status.name
        assert get(found, "mcp_server_reconnect_attempts_total", server=name) == 0
        assert get(found, "mcp_server_reconnect_failures_total", server=name) == 0
        assert get(found, "mcp_server_health_check_failures_total", server=name) == 0
        for reason in DISCONNECT_REASONS:
            assert get(found, "mcp_server_disconnects_total", server=name, reason=reason) == 0
        assert get(found, "mcp_server_connect_duration_seconds_count", server=name) == 0
        assert get(found, "mcp_server_health_check_duration_seconds_bucket", server=name, le="+Inf") == 0
        assert get(found, "mcp_server_last_state_change_timestamp_seconds", server=name) == status.since
    assert get(found, "mcp_servers_configured") == 2
    assert (
        get(
            found,
            "mcp_sidecar_build_info",
            version=sidecar.__version__,
            mcp_version=importlib.metadata.version("mcp"),
        )
        == 1
    )


def test_state_gauges_are_read_from_the_snapshot_at_scrape_time() -> None:
    statuses = [A, B]
    metrics = SidecarMetrics(lambda: statuses)
    found = samples(metrics)
    assert get(found, "mcp_server_up", server="alpha", transport="stdio", criticality="critical") == 1
    assert get(found, "mcp_server_up", server="beta", transport="sse", criticality="optional") == 0
    assert [get(found, "mcp_server_state", server="beta", state=s.value) for s in ServerState] == [
        1,
        0,
        0,
        0,
        0,
        0,
    ]
    assert get(found, "mcp_server_tools", server="alpha") == 2
    assert (
        get(
            found,
            "mcp_server_info",
            server="alpha",
            protocol_version="2025-11-25",
            implementation="fs",
            implementation_version="1.2",
        )
        == 1
    )
    assert not any(key[0] == "mcp_server_info" and ("server", "beta") in key[1] for key in found)
    assert (get(found, "mcp_servers_active"), get(found, "mcp_servers_failed")) == (1, 0)

    statuses[0] = dataclasses.replace(A, state=ServerState.RECONNECTING, since=200.0, tools=())
    found = samples(metrics)
    assert get(found, "mcp_server_up", server="alpha", transport="stdio", criticality="critical") == 0
    assert get(found, "mcp_server_state", server="alpha", state="reconnecting") == 1
    assert get(found, "mcp_server_state", server="alpha", state="active") == 0
    assert get(found, "mcp_server_last_state_change_timestamp_seconds", server="alpha") == 200.0
    assert (get(found, "mcp_servers_active"), get(found, "mcp_servers_failed")) == (0, 1)

    statuses.pop(0)  # a reload removed alpha: its series go with it
    found = samples(metrics)
    assert not any(("server", "alpha") in key[1] for key in found)
    assert get(found, "mcp_servers_configured") == 1


def test_events_feed_counters_and_histograms() -> None:
    metrics = SidecarMetrics(lambda: [A])
    for e in (
        event(HealthCheckPassed, duration=0.0007),
        event(HealthCheckPassed, duration=0.003),
        event(
            HealthCheckFailed,
            duration=2.0,
            error="no answer",
            error_type="probe_timeout",
            consecutive_failures=1,
        ),
        event(Lost, reason="exited", error="exited with code 1", connected_for=5.0),
        event(ReconnectAttempt, attempt=1),
        event(ConnectFailed, attempt=1, duration=0.2, error="refused", error_type="transport_error"),
        event(ConnectFailed, attempt=0, duration=0.2, error="refused", error_type="transport_error"),
        event(ReconnectAttempt, attempt=2),
        event(
            Connected,
            attempt=2,
            duration=1.5,
            protocol_version=None,
            server_name=None,
            server_version=None,
            tools=(),
        ),
        event(HealthCheckPassed, server="removed-by-reload", duration=0.001),
    ):
        metrics.observe(e)
    found = samples(metrics)
    assert get(found, "mcp_server_reconnect_attempts_total", server="alpha") == 2
    assert get(found, "mcp_server_reconnect_failures_total", server="alpha") == 1  # attempt 0 is no reconnect
    assert get(found, "mcp_server_health_check_failures_total", server="alpha") == 1
    assert get(found, "mcp_server_disconnects_total", server="alpha", reason="exited") == 1
    probe = {
        le: get(found, "mcp_server_health_check_duration_seconds_bucket", server="alpha", le=le)
        for le in ("0.001", "0.005", "1.0", "2.5", "+Inf")
    }
    assert probe == {"0.001": 1, "0.005": 2, "1.0": 2, "2.5": 3, "+Inf": 3}
    assert get(found, "mcp_server_health_check_duration_seconds_sum", server="alpha") == pytest.approx(2.0037)
    assert get(found, "mcp_server_connect_duration_seconds_count", server="alpha") == 1
    assert not any(("server", "removed-by-reload") in key[1] for key in found)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_hostile_tool_names_are_escaped(openmetrics: bool) -> None:
    metrics = SidecarMetrics(lambda: [A])
    tool = 'say "hi"\\ 100%s\nnext'
    metrics.observe(event(ToolCalled, tool=tool, duration=0.02, error_type=None))
    metrics.observe(event(ToolCalled, tool=tool, duration=0.5, error_type="tool_error"))
    found = samples(metrics, openmetrics)
    assert get(found, "mcp_tool_calls_total", server="alpha", tool=tool) == 2
    assert get(found, "mcp_tool_call_errors_total", server="alpha", tool=tool, error_type="tool_error") == 1
    assert get(found, "mcp_tool_call_duration_seconds_bucket", server="alpha", tool=tool, le="0.025") == 1
    assert get(found, "mcp_tool_call_duration_seconds_count", server="alpha", tool=tool) == 2


def test_an_unchanged_scrape_is_served_again_and_a_change_is_not_missed() -> None:
    metrics = SidecarMetrics(lambda: [A])
    first, _ = metrics.render()
    cached = dict(metrics._bodies)  # what a scrape with no change may reuse as is
    assert (
        metrics.render()[0].split(b"\n# HELP mcp_servers_active")[1]
        == first.split(b"\n# HELP mcp_servers_active")[1]
    )
    assert all(metrics._bodies[family] is body for family, body in cached.items())  # nothing re-rendered
    metrics.observe(event(HealthCheckPassed, duration=0.01))
    assert get(samples(metrics), "mcp_server_health_check_duration_seconds_count", server="alpha") == 1


def test_openmetrics_is_chosen_by_the_accept_header() -> None:
    prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    assert wants_openmetrics(prometheus)
    assert not wants_openmetrics("text/plain")
    assert not wants_openmetrics("")


# -- the MCP convention histograms ---------------------------------------------------------------

OPS = "mcp_client_operation_duration_seconds"


def _connected(server: str = "alpha", version: str = "2025-11-25") -> LifecycleEvent:
    phases = (Phase("initialize", 1.0, 1.004), Phase("tools/list", 1.004, 1.03))
    return event(Connected, server=server, attempt=0, duration=0.03, protocol_version=version,
                 server_name="fs", server_version="1", tools=("read",), phases=phases)  # fmt: skip


@pytest.mark.parametrize("openmetrics", [False, True])
def test_convention_histograms_in_seconds_with_the_conventions_buckets(openmetrics: bool) -> None:
    metrics = SidecarMetrics(lambda: [A])
    metrics.observe(_connected())
    metrics.observe(event(HealthCheckPassed, duration=0.015, method="ping"))
    metrics.observe(event(ToolCalled, tool="read", duration=0.4, error_type="-32602"))
    metrics.observe(event(Lost, reason="exited", error="x", connected_for=75.0))
    body, _ = metrics.render(openmetrics)
    families = {f.name: f for f in (parse_openmetrics if openmetrics else parse_text)(body.decode())}
    for name in (OPS, "mcp_client_session_duration_seconds", "mcp_server_operation_duration_seconds",
                 "mcp_server_session_duration_seconds"):  # fmt: skip
        key = name.removesuffix("_seconds") if openmetrics else name  # OpenMetrics keeps the unit apart
        assert families[key if key in families else name].type == "histogram", name
    found = samples(metrics, openmetrics)
    base = {"mcp_protocol_version": "2025-11-25", "network_transport": "pipe", "mcp_sidecar_server": "alpha"}
    ping = {"mcp_method_name": "ping", **base}
    les = ("0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0", "2.0", "5.0", "10.0", "30.0", "60.0", "120.0",
           "300.0", "+Inf")  # fmt: skip
    assert [get(found, f"{OPS}_bucket", **ping, le=le) for le in les] == [0] + [1] * 14
    assert get(found, f"{OPS}_count", mcp_method_name="initialize", **base) == 1
    assert get(found, f"{OPS}_sum", mcp_method_name="tools/list", **base) == pytest.approx(0.026)
    call = {"mcp_method_name": "tools/call", "error_type": "-32602", "gen_ai_tool_name": "read", **base}
    assert get(found, f"{OPS}_bucket", **call, le="0.5") == 1
    assert get(found, f"{OPS}_bucket", **call, le="0.2") == 0
    lost = {"error_type": "exited", **base}
    assert get(found, "mcp_client_session_duration_seconds_bucket", **lost, le="120.0") == 1
    assert get(found, "mcp_client_session_duration_seconds_bucket", **lost, le="60.0") == 0


def test_the_gateway_records_its_side() -> None:
    metrics = SidecarMetrics(lambda: [A])
    metrics.record_server_operation("tools/call", 0.03, tool="alpha__read", protocol_version="2026-07-28")
    metrics.record_server_operation("tools/call", 0.5, error_type="tool_error", tool="alpha__read")
    metrics.record_server_operation("made/up", 0.001, error_type="-32601")  # a client can say anything
    metrics.record_server_session(12.0, "2025-11-25")
    metrics.record_server_session(3.0, "2025-11-25", error_type="closed")
    found = samples(metrics)
    ops = "mcp_server_operation_duration_seconds"
    ok = {"mcp_method_name": "tools/call", "gen_ai_tool_name": "alpha__read",
          "mcp_protocol_version": "2026-07-28", "network_transport": "tcp"}  # fmt: skip
    assert get(found, f"{ops}_count", **ok) == 1
    failed = {"mcp_method_name": "tools/call", "error_type": "tool_error", "gen_ai_tool_name": "alpha__read",
              "network_transport": "tcp"}  # fmt: skip
    assert get(found, f"{ops}_bucket", **failed, le="0.5") == 1
    assert (
        get(found, f"{ops}_count", mcp_method_name="_OTHER", error_type="-32601", network_transport="tcp")
        == 1
    )
    sessions = "mcp_server_session_duration_seconds"
    assert get(found, f"{sessions}_count", mcp_protocol_version="2025-11-25", network_transport="tcp") == 1
    assert get(found, f"{sessions}_sum", error_type="closed", mcp_protocol_version="2025-11-25",
               network_transport="tcp") == 3.0  # fmt: skip


def test_one_observation_reaches_prometheus_and_every_listener_alike() -> None:
    metrics = SidecarMetrics(lambda: [A])
    heard: list[Observation] = []
    metrics.add_listener(heard.append)
    metrics.observe(_connected())
    metrics.observe(event(HealthCheckPassed, duration=0.002, method="ping"))
    metrics.record_server_session(1.0)
    names = [o.metric for o in heard]
    assert names == [
        "mcp_server_connect_duration_seconds", CLIENT_OPERATION, CLIENT_OPERATION,
        "mcp_server_health_check_duration_seconds", CLIENT_OPERATION, "mcp.server.session.duration",
    ]  # fmt: skip
    found = samples(metrics)
    ping = next(o for o in heard if dict(o.attributes).get("mcp.method.name") == "ping")
    labels = {key.replace(".", "_"): value for key, value in ping.attributes}
    assert get(found, f"{OPS}_sum", **labels) == ping.value


def test_a_removed_server_takes_its_convention_series_along() -> None:
    statuses = [A, B]
    metrics = SidecarMetrics(lambda: statuses)
    metrics.observe(_connected())
    metrics.observe(_connected(server="beta"))
    metrics.record_server_session(1.0)
    alpha = {"mcp_protocol_version": "2025-11-25", "network_transport": "pipe", "mcp_sidecar_server": "alpha"}
    assert get(samples(metrics), f"{OPS}_count", mcp_method_name="initialize", **alpha) == 1
    statuses.pop(0)
    found = samples(metrics)
    assert not any(("mcp_sidecar_server", "alpha") in key[1] for key in found)
    assert any(("mcp_sidecar_server", "beta") in key[1] for key in found)
    assert get(found, "mcp_server_session_duration_seconds_count", network_transport="tcp") == 1


def test_contract_samples_for_the_otlp_export_match_the_scrape() -> None:
    metrics = SidecarMetrics(lambda: [A, B])
    metrics.observe(event(ReconnectAttempt, attempt=1))
    metrics.observe(event(ToolCalled, tool="read", duration=0.1, error_type="tool_error"))
    found = samples(metrics)
    exported = metrics.contract_samples()
    for name, points in exported.items():
        for labels, value in points:
            assert get(found, name, **labels) == value, (name, labels)
    assert exported["mcp_tool_call_errors_total"] == [
        ({"server": "alpha", "tool": "read", "error_type": "tool_error"}, 1)
    ]
    assert len(exported["mcp_server_state"]) == 2 * 6


def test_every_otlp_export_reads_the_numbers_of_its_own_moment() -> None:
    """Two exports in quick succession (the last one at exit follows a periodic one closely):
    the second carries what changed in between, not the first one's snapshot."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from sidecar.telemetry.otlp_metrics import MetricExport

    statuses = [A]
    reader = InMemoryMetricReader()
    export = MetricExport(MeterProvider(metric_readers=[reader]), "test")
    export.attach(SidecarMetrics(lambda: statuses))

    def up() -> list[float]:
        data = reader.get_metrics_data()
        assert data is not None
        return [
            point.value
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "mcp_server_up"
            for point in metric.data.data_points
        ]

    assert up() == [1.0]
    statuses = [dataclasses.replace(A, state=ServerState.RECONNECTING)]
    assert up() == [0.0]
