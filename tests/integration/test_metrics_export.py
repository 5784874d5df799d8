"""OTLP metrics (http/protobuf and gRPC) from a real manager and real servers, to a receiver in the test.

A `MCPServerManager` runs the behaving server (tests/servers/behaving.py); its events feed a
`SidecarMetrics` that the export from `configure_metric_export` (standard OTEL_* variables)
is attached to, as the CLI does. The receiver (tests/otlp.py) decodes what arrives; `/metrics`
is parsed with prometheus-client's parser, and the two must carry the same numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from otlp import OTLPReceiver, ReceivedPoint, grpc_receiver, http_receiver
from prometheus_client.parser import text_string_to_metric_families

from sidecar import MCPServerManager, ServerConfig
from sidecar.events import LifecycleEvent, Subscription
from sidecar.telemetry.conventions import BUCKETS, CLIENT_OPERATION, CLIENT_SESSION, prometheus_name
from sidecar.telemetry.metrics import DURATION_BUCKETS, SidecarMetrics
from sidecar.telemetry.otlp_metrics import configure_metric_export, shutdown_metric_export

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

VERSION = "9.9.9-test"
SERVER = "mcp_sidecar.server"
_OTEL_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
)


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_* variable from the outside world; the test sets what it needs."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def _feed(subscription: Subscription, metrics: SidecarMetrics) -> None:
    async for event in subscription:
        metrics.observe(event)


def _probes(server: str, n: int) -> Callable[[LifecycleEvent], bool]:
    seen = [0]

    def match(event: LifecycleEvent) -> bool:
        seen[0] += event.server == server and event.kind == "health_check_passed"
        return seen[0] >= n

    return match


def _series(point: ReceivedPoint) -> tuple[tuple[str, str], ...]:
    """A data point's attributes as the Prometheus labels `/metrics` gives the same series."""
    return tuple(sorted((key.replace(".", "_"), str(value)) for key, value in point.attributes.items()))


def _scraped_counts(metrics: SidecarMetrics, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    body, _ = metrics.render()
    counts = {}
    for parsed in text_string_to_metric_families(body.decode()):
        for sample in parsed.samples:
            if sample.name == f"{family}_count":
                counts[tuple(sorted(sample.labels.items()))] = sample.value
    return counts


Receiver = Callable[[], AbstractAsyncContextManager[OTLPReceiver]]


@pytest.mark.parametrize("receiver_of", [http_receiver, grpc_receiver], ids=["http-protobuf", "grpc"])
async def test_histograms_and_contract_series_arrive_over_otlp(
    receiver_of: Receiver,
    python_server: Callable[..., ServerConfig],
    otel_env: pytest.MonkeyPatch,
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[[LifecycleEvent], bool]],
    leak_guard: LeakGuard,
) -> None:
    async with receiver_of() as receiver:
        for name, value in receiver.env().items():
            otel_env.setenv(name, value)
        otel_env.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
        export = configure_metric_export(VERSION)
        assert export is not None
        manager = MCPServerManager([python_server(name="tools")], shutdown_timeout=0.5)
        metrics = SidecarMetrics(manager.statuses)
        export.attach(metrics)
        events = watch(manager)
        subscription = manager.subscribe(max_buffer=10_000)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, subscription, metrics)
                async with manager:
                    assert [s.name for s in manager.active_servers] == ["tools"], manager.errors
                    version = manager.status("tools").protocol_version
                    await events.wait_for(_probes("tools", 2), timeout=10)
                    await manager.call_tool("tools", "echo", {"text": "hi"})
                    assert (await manager.call_tool("tools", "no_such_tool", {})).is_error
                    pid = manager.status("tools").pid
                    assert pid is not None
                    mark = events.mark()
                    os.kill(pid, signal.SIGKILL)
                    await events.wait_for(is_event("tools", "connected", attempt=1), timeout=15, after=mark)
                    # Pushed while running, not only at exit: the lost session is on its way.
                    await receiver.wait_for_point(lambda p: p.name == CLIENT_SESSION, timeout=10)
        finally:
            flushed = await anyio.to_thread.run_sync(shutdown_metric_export, export, 10.0)
        assert flushed, "the last export did not finish within 10 s"
    leak_guard.assert_clean()

    operations = receiver.latest(CLIENT_OPERATION)
    assert (
        operations and {p.unit for p in operations} == {"s"} and {p.kind for p in operations} == {"histogram"}
    )
    assert all(p.explicit_bounds == BUCKETS for p in operations)
    assert all(p.resource["service.name"] == "mcp-sidecar" for p in operations)
    assert all(
        p.attributes[SERVER] == "tools" and p.attributes["network.transport"] == "pipe" for p in operations
    )
    # The handshake and the probe of the era the server speaks (SDK-built servers: 2026-07-28).
    legacy = version in HANDSHAKE_PROTOCOL_VERSIONS
    handshake, probe = ("initialize", "ping") if legacy else ("server/discover", "server/discover")
    methods = {(p.attributes["mcp.method.name"], p.attributes.get("error.type")) for p in operations}
    assert {(handshake, None), ("tools/list", None), (probe, None), ("tools/call", None)} <= methods
    assert ("tools/call", "tool_error") in methods
    (echo,) = [p for p in operations if p.attributes.get("gen_ai.tool.name") == "echo"]
    assert echo.count == 1 and echo.attributes["mcp.protocol.version"] == version
    # The first connect, and the one after the kill; probes are `server/discover` too in 2026-07-28.
    handshakes = sum(p.count for p in operations if p.attributes["mcp.method.name"] == handshake)
    assert handshakes >= 2 if handshake == probe else handshakes == 2
    assert sum(p.count for p in operations if p.attributes["mcp.method.name"] == "tools/list") == 2

    sessions = receiver.latest(CLIENT_SESSION)
    assert {p.attributes.get("error.type") for p in sessions} == {"exited", None}  # killed; stopped at exit
    assert all(p.unit == "s" and p.explicit_bounds == BUCKETS and p.count == 1 for p in sessions)

    # The same numbers on /metrics, series by series.
    for name in (CLIENT_OPERATION, CLIENT_SESSION):
        exported = {_series(p): float(p.count) for p in receiver.latest(name)}
        assert exported == _scraped_counts(metrics, prometheus_name(name)), name

    # The contract series too, under the names Prometheus translates back to the contract's.
    (up,) = receiver.latest("mcp_server_up")
    assert up.kind == "gauge" and up.attributes == {"server": "tools", "transport": "stdio",
                                                     "criticality": "optional"}  # fmt: skip
    exited = [p for p in receiver.latest("mcp_server_disconnects") if p.attributes["reason"] == "exited"]
    assert [(p.kind, p.monotonic, p.value) for p in exited] == [("sum", True, 1)]
    changed = receiver.latest("mcp_server_last_state_change_timestamp")
    assert changed and changed[0].unit == "s"
    probes = receiver.latest("mcp_server_health_check_duration")
    assert probes and probes[0].unit == "s" and probes[0].explicit_bounds == DURATION_BUCKETS
    assert receiver.latest("mcp_sidecar_build_info")[0].attributes["version"]


_NOTHING_ASKED = """
import sys, threading
from sidecar.telemetry.otlp_metrics import configure_metric_export
export = configure_metric_export("x")
print(json.dumps({
    "export": export is not None,
    "modules": sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk.metrics")),
    "threads": sorted(t.name for t in threading.enumerate()),
}))
"""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_METRICS_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_METRICS_EXPORTER": "prometheus"},
    ],
    ids=["no-variable", "exporter-none", "sdk-disabled", "prometheus-only"],
)
def test_nothing_asked_no_export_no_import_no_thread(env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    found = subprocess.run(
        [sys.executable, "-c", "import json" + _NOTHING_ASKED],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(found.stdout)
    assert report == {"export": False, "modules": [], "threads": ["MainThread"]}, found.stderr


async def test_an_export_runs_its_thread_and_stops_it(otel_env: pytest.MonkeyPatch) -> None:
    """The counterpart: asked for, there is a reader thread, and shutting down ends it."""
    import threading

    async with http_receiver() as receiver:
        for name, value in receiver.env().items():
            otel_env.setenv(name, value)
        export = configure_metric_export(VERSION)
        assert export is not None
        export.attach(SidecarMetrics(list))
        threads = [t for t in threading.enumerate() if "Metric" in t.name]
        assert threads, [t.name for t in threading.enumerate()]
        assert await anyio.to_thread.run_sync(shutdown_metric_export, export, 10.0)
        assert not any(t.is_alive() for t in threads)
        # Its last export carried the (empty) sidecar's gauges.
        assert receiver.latest("mcp_servers_configured")[0].value == 0
