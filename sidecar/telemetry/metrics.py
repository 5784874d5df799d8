"""Prometheus metrics: the contract's series, from the state snapshot and the lifecycle events.

State-derived gauges (`mcp_server_up`, `mcp_server_state`, counts, tools, info) are
computed at scrape time from `MCPServerManager.statuses()`, so they cannot drift from
the supervisors. Counters and histograms are fed by events and exist, at zero, for
every configured server from the first scrape on.

The per-server series are rendered here rather than through prometheus-client's
`generate_latest`: with 1,000 servers that is ~60,000 samples, which the library
renders in about a second (measured), against a budget of 20 ms. Label strings and
line prefixes are built once per server; a scrape only joins numbers onto them. The
process, platform and build-info series (a few dozen) still go through the library,
and tests parse every scrape with the library's own parsers.
"""

from __future__ import annotations

import importlib.metadata
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..events import (
    Connected,
    ConnectFailed,
    HealthCheckFailed,
    HealthCheckPassed,
    LifecycleEvent,
    Lost,
    ReconnectAttempt,
    ToolCalled,
)
from ..state import ServerState, ServerStatus, is_down

__all__ = ["DISCONNECT_REASONS", "DURATION_BUCKETS", "SidecarMetrics", "wants_openmetrics"]

# From a 1 ms probe on localhost to a 30 s connect of a cold `npx` server.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DISCONNECT_REASONS = ("exited", "probe_timeout", "probe_error", "transport_error", "closed")
_STATES = tuple(state.value for state in ServerState)
# The text format this module writes; prometheus-client's own "latest" may be newer.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LE = [floatToGoString(bound) for bound in DURATION_BUCKETS] + ["+Inf"]


def _escape(value: str) -> str:
    """A label value as the exposition formats need it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())


def wants_openmetrics(accept: str) -> bool:
    """Whether an `Accept` header asks for OpenMetrics (as Prometheus does by default)."""
    return "application/openmetrics-text" in accept


def _template(prefix: str) -> str:
    """A line prefix made safe for %-formatting (a `%` in a server name stays literal)."""
    return prefix.replace("%", "%%")


class _Histogram:
    """Bucket counts (made cumulative when rendered), sum and count.

    All its lines are one %-template built once, and the text is kept until the next
    observation: a scrape re-renders only the histograms that changed since the last one.
    """

    __slots__ = ("_rendered", "_template", "buckets", "count", "sum")

    def __init__(self, name: str, labels: str) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0
        lines = [f'{name}_bucket{{{labels},le="{le}"}} %d' for le in _LE]
        lines += [f"{name}_count{{{labels}}} %d", f"{name}_sum{{{labels}}} %r"]
        self._template = "".join(_template(line[:-2]) + line[-2:] + "\n" for line in lines)

        self._rendered: str | None = None

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(DURATION_BUCKETS, value)] += 1
        self.sum += value
        self.count += 1
        self._rendered = None

    def render(self) -> str:
        if self._rendered is None:
            self._rendered = self._template % (*accumulate(self.buckets), self.count, self.sum)
        return self._rendered


class _ToolSeries:
    """One tool of one server, as called through the manager."""

    __slots__ = ("calls", "duration", "errors", "labels")

    def __init__(self, server: str, tool: str) -> None:
        self.labels = _labels(server=server, tool=tool)
        self.calls = 0
        self.errors: dict[str, int] = {}
        self.duration = _Histogram("mcp_tool_call_duration_seconds", self.labels)


class _ServerSeries:
    """One server's series: event-fed numbers, and label strings built once."""

    def __init__(self, status: ServerStatus) -> None:
        self.name = status.name
        self.server = _labels(server=status.name)
        self.identity = _labels(
            server=status.name, transport=status.transport, criticality=status.criticality
        )
        self._state_prefixes = [f'mcp_server_state{{{self.server},state="{state}"}} ' for state in _STATES]
        self._shown: tuple[object, ...] = ()
        self.state_lines = ("", "", "", "", "")  # up, state set, last change, tools, info
        self.reconnect_attempts = 0
        self.reconnect_failures = 0
        self.health_check_failures = 0
        self.disconnects = dict.fromkeys(DISCONNECT_REASONS, 0)
        self._disconnect_template = "".join(
            _template(f'mcp_server_disconnects_total{{{self.server},reason="{reason}"}} ') + "%d\n"
            for reason in DISCONNECT_REASONS
        )
        self.connect = _Histogram("mcp_server_connect_duration_seconds", self.server)
        self.probe = _Histogram("mcp_server_health_check_duration_seconds", self.server)
        self.tools: dict[str, _ToolSeries] = {}

    def show(self, status: ServerStatus) -> bool:
        """Build the state-derived lines for `status`; False when they are what they were."""
        shown = (status.state, status.since, len(status.tools), status.protocol_version, status.server_name,
                 status.server_version)  # fmt: skip
        if shown == self._shown:
            return False
        self._shown = shown
        current = _STATES.index(status.state.value)
        info = ""
        if status.server_name is not None or status.protocol_version is not None:  # it has said something
            labels = _labels(
                server=self.name,
                protocol_version=status.protocol_version or "",
                implementation=status.server_name or "",
                implementation_version=status.server_version or "",
            )
            info = f"{INFO.name}{{{labels}}} 1\n"
        self.state_lines = (
            f"{UP.name}{{{self.identity}}} {1 if status.state is ServerState.ACTIVE else 0}\n",
            "".join(f"{p}{1 if i == current else 0}\n" for i, p in enumerate(self._state_prefixes)),
            f"{CHANGED.name}{{{self.server}}} {status.since!r}\n",
            f"{TOOLS.name}{{{self.server}}} {len(status.tools)}\n",
            info,
        )
        return True

    def counter_lines(self) -> tuple[str, str, str, str]:
        return (
            f"{ATTEMPTS.name}{{{self.server}}} {self.reconnect_attempts}\n",
            f"{ATTEMPT_FAILURES.name}{{{self.server}}} {self.reconnect_failures}\n",
            f"{PROBE_FAILURES.name}{{{self.server}}} {self.health_check_failures}\n",
            self._disconnect_template % tuple(self.disconnects.values()),
        )

    def tool_lines(self) -> tuple[str, str, str]:
        tools = self.tools.values()
        return (
            "".join(f"{CALLS.name}{{{t.labels}}} {t.calls}\n" for t in tools),
            "".join(
                f'{CALL_ERRORS.name}{{{t.labels},error_type="{_escape(kind)}"}} {n}\n'
                for t in tools
                for kind, n in t.errors.items()
            ),
            "".join(t.duration.render() for t in tools),
        )


@dataclass(frozen=True)
class _Family:
    name: str  # as in the samples; counters end in `_total`
    kind: str
    help: str

    def header(self, openmetrics: bool) -> bytes:
        # OpenMetrics names a counter family without `_total`; the 0.0.4 text format with it.
        name = self.name.removesuffix("_total") if openmetrics and self.kind == "counter" else self.name
        return f"# HELP {name} {self.help}\n# TYPE {name} {self.kind}\n".encode()


_F = _Family
UP = _F("mcp_server_up", "gauge", "1 when the server is connected and healthy, else 0.")
STATE = _F("mcp_server_state", "gauge", "The server's lifecycle state: 1 for the current one.")
ACTIVE = _F("mcp_servers_active", "gauge", "Servers active now.")
FAILED = _F("mcp_servers_failed", "gauge", "Servers failed (reconnecting or given up, not dropped) now.")
CONFIGURED = _F("mcp_servers_configured", "gauge", "Servers in the configuration.")
ATTEMPTS = _F("mcp_server_reconnect_attempts_total", "counter", "Reconnect attempts started.")
ATTEMPT_FAILURES = _F("mcp_server_reconnect_failures_total", "counter", "Reconnect attempts that failed.")
PROBE_FAILURES = _F("mcp_server_health_check_failures_total", "counter", "Failed health probes.")
DISCONNECTS = _F("mcp_server_disconnects_total", "counter", "Connections lost, by reason.")
CONNECT = _F("mcp_server_connect_duration_seconds", "histogram", "Connect, initialize and tools/list.")
PROBE = _F("mcp_server_health_check_duration_seconds", "histogram", "Health probe round trips.")
CHANGED = _F("mcp_server_last_state_change_timestamp_seconds", "gauge", "Unix time of the last transition.")
TOOLS = _F("mcp_server_tools", "gauge", "Tools the server offers.")
INFO = _F("mcp_server_info", "gauge", "What the server said about itself at its last connect.")
CALLS = _F("mcp_tool_calls_total", "counter", "Tool calls through the sidecar.")
CALL_ERRORS = _F("mcp_tool_call_errors_total", "counter", "Failed tool calls, by error type.")
CALL_DURATION = _F("mcp_tool_call_duration_seconds", "histogram", "Tool call latency through the sidecar.")

# Families rendered from the same per-server tuple, in order; each group is rebuilt as a
# whole when one of its servers changed, else its bytes are reused.
_STATE_FAMILIES = (UP, STATE, CHANGED, TOOLS, INFO)
_COUNTER_FAMILIES = (ATTEMPTS, ATTEMPT_FAILURES, PROBE_FAILURES, DISCONNECTS)
_TOOL_FAMILIES = (CALLS, CALL_ERRORS, CALL_DURATION)
_COUNTER_EVENTS = (ReconnectAttempt, ConnectFailed, HealthCheckFailed, Lost)


class SidecarMetrics:
    """Every series of the contract for one manager: feed it events, render it on scrape."""

    def __init__(self, statuses: Callable[[], Sequence[ServerStatus]]) -> None:
        self._statuses = statuses
        self._series: dict[str, _ServerSeries] = {}
        self._stale: set[str] = set()  # groups to rebuild: "state", "counters", "connect", "probe", "tools"
        self._bodies: dict[_Family, bytes] = {}
        self._process = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self._process.register(collector)
        Gauge(
            "mcp_sidecar_build_info",
            "The running build.",
            ["version", "mcp_version"],
            registry=self._process,
        ).labels(importlib.metadata.version("mcp-sidecar"), importlib.metadata.version("mcp")).set(1)
        self._sync(statuses())

    # -- feeding ------------------------------------------------------------------------------

    def observe(self, event: LifecycleEvent) -> None:
        series = self._series.get(event.server)
        if series is None:
            return  # a server removed by a reload; its last events no longer count
        match event:
            case HealthCheckPassed(duration=duration):
                series.probe.observe(duration)
                self._stale.add("probe")
            case HealthCheckFailed(duration=duration):
                series.probe.observe(duration)
                series.health_check_failures += 1
                self._stale.add("probe")
            case ToolCalled(tool=tool, duration=duration, error_type=error_type):
                calls = series.tools.get(tool)
                if calls is None:
                    calls = series.tools[tool] = _ToolSeries(event.server, tool)
                calls.calls += 1
                calls.duration.observe(duration)
                if error_type is not None:
                    calls.errors[error_type] = calls.errors.get(error_type, 0) + 1
                self._stale.add("tools")
            case ReconnectAttempt():
                series.reconnect_attempts += 1
            case Connected(duration=duration):
                series.connect.observe(duration)
                self._stale.add("connect")
            case ConnectFailed(attempt=attempt) if attempt > 0:
                series.reconnect_failures += 1
            case Lost(reason=reason):
                series.disconnects[reason if reason in series.disconnects else "closed"] += 1
        if isinstance(event, _COUNTER_EVENTS):
            self._stale.add("counters")

    def _sync(self, statuses: Sequence[ServerStatus]) -> list[tuple[_ServerSeries, ServerStatus]]:
        """Pair each status with its series: new servers get zeroed series, removed ones lose theirs."""
        pairs = []
        for status in statuses:
            series = self._series.get(status.name)
            if series is None:
                series = self._series[status.name] = _ServerSeries(status)
                self._stale.update(("counters", "connect", "probe", "tools"))
            pairs.append((series, status))
        if len(pairs) != len(self._series) or list(self._series) != [s.name for s, _ in pairs]:
            self._series = {series.name: series for series, _ in pairs}  # removed, or reordered
            self._stale.update(("state", "counters", "connect", "probe", "tools"))
        return pairs

    # -- rendering ----------------------------------------------------------------------------

    def render(self, openmetrics: bool = False) -> tuple[bytes, str]:
        """The whole exposition and its content type."""
        pairs = self._sync(self._statuses())
        if any([series.show(status) for series, status in pairs]):  # a list: every one must run
            self._stale.add("state")
        self._rebuild([series for series, _ in pairs])
        active = sum(1 for _, status in pairs if status.state is ServerState.ACTIVE)
        failed = sum(1 for _, status in pairs if is_down(status.state))
        process = (generate_openmetrics if openmetrics else generate_latest)(self._process)
        out = [process.removesuffix(b"# EOF\n")]
        for family, value in ((ACTIVE, active), (FAILED, failed), (CONFIGURED, len(pairs))):
            out += (family.header(openmetrics), f"{family.name} {value}\n".encode())
        for family in (*_STATE_FAMILIES, *_COUNTER_FAMILIES, CONNECT, PROBE, *_TOOL_FAMILIES):
            out += (family.header(openmetrics), self._bodies[family])
        if openmetrics:
            out.append(b"# EOF\n")
        return b"".join(out), OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE

    def _rebuild(self, servers: list[_ServerSeries]) -> None:
        """Re-render the family groups that changed since the last scrape."""
        stale, self._stale = self._stale, set()
        groups: list[tuple[tuple[_Family, ...], Callable[[_ServerSeries], Sequence[str]]]] = []
        if "state" in stale:
            groups.append((_STATE_FAMILIES, lambda series: series.state_lines))
        if "counters" in stale:
            groups.append((_COUNTER_FAMILIES, _ServerSeries.counter_lines))
        if "connect" in stale:
            groups.append(((CONNECT,), lambda series: (series.connect.render(),)))
        if "probe" in stale:
            groups.append(((PROBE,), lambda series: (series.probe.render(),)))
        if "tools" in stale:
            groups.append((_TOOL_FAMILIES, _ServerSeries.tool_lines))
        for families, lines_of in groups:
            rows = [lines_of(series) for series in servers]
            for i, family in enumerate(families):
                self._bodies[family] = "".join([row[i] for row in rows]).encode()

    def register(self, collector: Collector) -> None:
        """Add a collector's series (the gateway's, say) to every scrape, after the process series."""
        self._process.register(collector)
