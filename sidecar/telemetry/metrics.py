"""Prometheus metrics: the contract's series, from the state snapshot and the lifecycle events.

State-derived gauges (`mcp_server_up`, `mcp_server_state`, counts, tools, info) are
computed at scrape time from `MCPServerManager.statuses()`, so they cannot drift from
the supervisors. Counters and histograms are fed by events and exist, at zero, for
every configured server from the first scrape on.

The histograms of the OpenTelemetry MCP conventions (`mcp_client_operation_duration_seconds`
...) are fed by the same events through `ClientConventions`, and by the gateway through
`record_server_operation` / `record_server_session`. Every histogram observation is also
handed to the listeners (the OTLP export), so both exports carry the same numbers.

The per-server series are rendered here rather than through prometheus-client's
`generate_latest`: with 1,000 servers that is ~60,000 samples, which the library
renders in about a second (measured), against a budget of 20 ms. Label strings and
line prefixes are built once per server; a scrape only joins numbers onto them, and
a histogram family is one %-format of all its series at once. The process, platform
and build-info series (a few dozen) still go through the library, and tests parse
every scrape with the library's own parsers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from .._version import mcp_version, sidecar_version
from ..events import (
    Connected,
    ConnectFailed,
    HealthCheckFailed,
    HealthCheckPassed,
    InternalError,
    LifecycleEvent,
    Lost,
    ReconnectAttempt,
    ToolCalled,
)
from ..state import ServerState, ServerStatus, is_down
from .conventions import (
    BUCKETS,
    CLIENT_OPERATION,
    CLIENT_SESSION,
    CONVENTION_METRICS,
    SERVER_ATTRIBUTE,
    SERVER_OPERATION,
    SERVER_SESSION,
    Attributes,
    ClientConventions,
    Observation,
    prometheus_name,
    server_operation,
    server_session,
)

__all__ = [
    "DISCONNECT_REASONS",
    "DURATION_BUCKETS",
    "KNOWN_METHODS",
    "SidecarMetrics",
    "wants_openmetrics",
]

# From a 1 ms probe on localhost to a 30 s connect of a cold `npx` server.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DISCONNECT_REASONS = ("exited", "probe_timeout", "probe_error", "transport_error", "closed", "internal_error")
_STATES = tuple(state.value for state in ServerState)
# The text format this module writes; prometheus-client's own "latest" may be newer.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Methods a gateway client may name as themselves; any other is `_OTHER` (a client could
# otherwise mint one series per made-up method name).
KNOWN_METHODS = frozenset(
    {
        "initialize", "ping", "server/discover", "subscriptions/listen", "tools/list", "tools/call",
        "prompts/list", "prompts/get", "resources/list", "resources/templates/list", "resources/read",
        "resources/subscribe", "resources/unsubscribe", "completion/complete", "logging/setLevel",
        "notifications/initialized", "notifications/cancelled", "notifications/progress",
        "notifications/roots/list_changed", "sampling/createMessage", "elicitation/create", "roots/list",
    }
)  # fmt: skip


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
    """One series' numbers, kept cumulative as rendered: bucket counts up to +Inf, count, sum."""

    __slots__ = ("_bounds", "values")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.values: list[float] = [0] * (len(bounds) + 2) + [0.0]

    def observe(self, value: float) -> None:
        values = self.values
        for i in range(bisect_left(self._bounds, value), len(values) - 1):  # its bucket, later ones, count
            values[i] += 1
        values[-1] += value


class _HistogramFamily:
    """The histograms of one family, in order, rendered with one %-format over a template of all
    their lines (built when the set of series changes). The bytes are kept until an observation."""

    def __init__(self, family: _Family, bounds: Sequence[float]) -> None:
        self.family = family
        self._le = [floatToGoString(bound) for bound in bounds] + ["+Inf"]
        self._members: list[_Histogram] = []
        self._template = b""
        self._body: bytes | None = b""

    def set_members(self, members: Iterable[tuple[str, _Histogram]]) -> None:
        """The series to render, as (label string, histogram), in order."""
        name, templates, self._members = self.family.name, [], []
        for labels, histogram in members:
            lines = [f'{name}_bucket{{{labels},le="{le}"}} %d' for le in self._le]
            lines += [f"{name}_count{{{labels}}} %d", f"{name}_sum{{{labels}}} %r"]
            templates.append("".join(_template(line[:-2]) + line[-2:] + "\n" for line in lines))
            self._members.append(histogram)
        self._template = "".join(templates).encode()
        self._body = None

    def changed(self) -> None:
        self._body = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = self._template % tuple(chain.from_iterable([h.values for h in self._members]))
        return self._body


class _ConventionFamily:
    """A convention histogram's series by attribute set, rendered in chunks by method, so that a
    round of probes re-renders the probes' series only."""

    def __init__(self, family: _Family) -> None:
        self.family = family
        self._chunks: dict[str, tuple[dict[Attributes, _Histogram], _HistogramFamily]] = {}
        self._layout: set[str] = set()  # chunks whose set of series changed

    def observe(self, attributes: Attributes, value: float) -> None:
        key = attributes[0][1] if attributes and attributes[0][0] == "mcp.method.name" else ""
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = self._chunks[key] = ({}, _HistogramFamily(self.family, BUCKETS))
        series, rendered = chunk
        histogram = series.get(attributes)
        if histogram is None:
            histogram = series[attributes] = _Histogram(BUCKETS)
            self._layout.add(key)
        histogram.observe(value)
        rendered.changed()

    def forget(self, gone: Callable[[Attributes], bool]) -> None:
        """Drop the series `gone` says are gone (a server removed by a reload)."""
        for key, (series, _) in self._chunks.items():
            for attributes in [a for a in series if gone(a)]:
                del series[attributes]
                self._layout.add(key)

    def bodies(self) -> list[bytes]:
        """The rendered chunks, in order (unchanged ones as they were)."""
        for key in self._layout:
            series, rendered = self._chunks[key]
            rendered.set_members((_prometheus_labels(a), h) for a, h in series.items())
        self._layout.clear()
        return [rendered.body() for _, rendered in self._chunks.values()]


class _ToolSeries:
    """One tool of one server, as called through the manager."""

    __slots__ = ("calls", "duration", "errors", "key", "labels")

    def __init__(self, server: str, tool: str) -> None:
        self.key = tool
        self.labels = _labels(server=server, tool=tool)
        self.calls = 0
        self.errors: dict[str, int] = {}
        self.duration = _Histogram(DURATION_BUCKETS)


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
        self._status: ServerStatus | None = None
        self.state_lines = ("", "", "", "", "")  # up, state set, last change, tools, info
        self.reconnect_attempts = 0
        self.reconnect_failures = 0
        self.health_check_failures = 0
        self.disconnects = dict.fromkeys(DISCONNECT_REASONS, 0)
        self._disconnect_template = "".join(
            _template(f'mcp_server_disconnects_total{{{self.server},reason="{reason}"}} ') + "%d\n"
            for reason in DISCONNECT_REASONS
        )
        self.connect = _Histogram(DURATION_BUCKETS)
        self.probe = _Histogram(DURATION_BUCKETS)
        self.tools: dict[str, _ToolSeries] = {}

    def show(self, status: ServerStatus) -> bool:
        """Build the state-derived lines for `status`; False when they are what they were."""
        if status is self._status:
            return False  # the very snapshot shown last time (statuses are frozen)
        self._status = status
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

    def tool_lines(self) -> tuple[str, str]:
        tools = self.tools.values()
        return (
            "".join(f"{CALLS.name}{{{t.labels}}} {t.calls}\n" for t in tools),
            "".join(
                f'{CALL_ERRORS.name}{{{t.labels},error_type="{_escape(kind)}"}} {n}\n'
                for t in tools
                for kind, n in t.errors.items()
            ),
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

CLIENT_OPERATION_FAMILY = _F(
    prometheus_name(CLIENT_OPERATION), "histogram", CONVENTION_METRICS[CLIENT_OPERATION]
)
CLIENT_SESSION_FAMILY = _F(prometheus_name(CLIENT_SESSION), "histogram", CONVENTION_METRICS[CLIENT_SESSION])
SERVER_OPERATION_FAMILY = _F(
    prometheus_name(SERVER_OPERATION), "histogram", CONVENTION_METRICS[SERVER_OPERATION]
)
SERVER_SESSION_FAMILY = _F(prometheus_name(SERVER_SESSION), "histogram", CONVENTION_METRICS[SERVER_SESSION])
_CONVENTION_FAMILIES = {
    CLIENT_OPERATION: CLIENT_OPERATION_FAMILY,
    CLIENT_SESSION: CLIENT_SESSION_FAMILY,
    SERVER_OPERATION: SERVER_OPERATION_FAMILY,
    SERVER_SESSION: SERVER_SESSION_FAMILY,
}

# Families rendered from the same per-server tuple, in order; each group is rebuilt as a
# whole when one of its servers changed, else its bytes are reused.
_STATE_FAMILIES = (UP, STATE, CHANGED, TOOLS, INFO)
_COUNTER_FAMILIES = (ATTEMPTS, ATTEMPT_FAILURES, PROBE_FAILURES, DISCONNECTS)
_TOOL_FAMILIES = (CALLS, CALL_ERRORS)
_COUNTER_EVENTS = (ReconnectAttempt, ConnectFailed, HealthCheckFailed, Lost)
_BUILD = {"version": sidecar_version(), "mcp_version": mcp_version()}  # 0.0.0 from an uninstalled tree

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _prometheus_labels(attributes: Attributes) -> str:
    """OTel attribute keys as Prometheus label names: dots become underscores."""
    return ",".join(f'{key.replace(".", "_")}="{_escape(value)}"' for key, value in attributes)


class SidecarMetrics:
    """Every series of the contract for one manager: feed it events, render it on scrape."""

    def __init__(self, statuses: Callable[[], Sequence[ServerStatus]]) -> None:
        self._statuses = statuses
        self._series: dict[str, _ServerSeries] = {}
        self._stale: set[str] = set()  # groups to rebuild: "state", "counters", "tools", "layout"
        self._bodies: dict[_Family, bytes] = {}
        self._connect = _HistogramFamily(CONNECT, DURATION_BUCKETS)
        self._probe = _HistogramFamily(PROBE, DURATION_BUCKETS)
        self._call = _HistogramFamily(CALL_DURATION, DURATION_BUCKETS)
        self._client = ClientConventions()
        self._conventions = {
            metric: _ConventionFamily(family) for metric, family in _CONVENTION_FAMILIES.items()
        }
        self._listeners: list[Callable[[Observation], None]] = []
        self._internal_error_count = 0  # as the prometheus-client counter below, for the OTLP export
        self._process = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self._process.register(collector)
        Gauge(
            "mcp_sidecar_build_info",
            "The running build.",
            ["version", "mcp_version"],
            registry=self._process,
        ).labels(_BUILD["version"], _BUILD["mcp_version"]).set(1)
        self._internal_errors = Counter(
            "mcp_sidecar_internal_errors",
            "Bugs of the sidecar's own caught by a supervisor (each logged with its traceback).",
            registry=self._process,
        )
        self._sync(statuses())

    # -- feeding ------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[Observation], None]) -> None:
        """Also hand every histogram observation (contract and conventions) to `listener`."""
        self._listeners.append(listener)

    def observe(self, event: LifecycleEvent) -> None:
        if isinstance(event, InternalError):
            self._internal_errors.inc()
            self._internal_error_count += 1
        observations = self._client.observe(event)  # it must see every event, to follow sessions
        series = self._series.get(event.server)
        if series is None:
            return  # a server removed by a reload; its last events no longer count
        match event:
            case HealthCheckPassed(duration=duration):
                self._contract(self._probe, series.probe, duration, series.name)
            case HealthCheckFailed(duration=duration):
                self._contract(self._probe, series.probe, duration, series.name)
                series.health_check_failures += 1
            case ToolCalled(tool=tool, duration=duration, error_type=error_type):
                calls = series.tools.get(tool)
                if calls is None:
                    calls = series.tools[tool] = _ToolSeries(event.server, tool)
                    self._stale.add("layout")
                calls.calls += 1
                self._contract(self._call, calls.duration, duration, series.name, tool)
                if error_type is not None:
                    calls.errors[error_type] = calls.errors.get(error_type, 0) + 1
                self._stale.add("tools")
            case ReconnectAttempt():
                series.reconnect_attempts += 1
            case Connected(duration=duration):
                self._contract(self._connect, series.connect, duration, series.name)
            case ConnectFailed(attempt=attempt) if attempt > 0:
                series.reconnect_failures += 1
            case Lost(reason=reason):
                series.disconnects[reason if reason in series.disconnects else "closed"] += 1
        if isinstance(event, _COUNTER_EVENTS):
            self._stale.add("counters")
        for observation in observations:
            self.record(observation)

    def _contract(
        self,
        family: _HistogramFamily,
        histogram: _Histogram,
        value: float,
        server: str,
        tool: str | None = None,
    ) -> None:
        histogram.observe(value)
        family.changed()
        if self._listeners:
            labels = (("server", server),) if tool is None else (("server", server), ("tool", tool))
            observation = Observation(family.family.name, value, labels)
            for listener in self._listeners:
                listener(observation)

    def record(self, observation: Observation) -> None:
        """Count one observation of a convention histogram (`sidecar.telemetry.conventions`)."""
        self._conventions[observation.metric].observe(observation.attributes, observation.value)
        for listener in self._listeners:
            listener(observation)

    def record_server_operation(
        self,
        method: str,
        duration: float,
        *,
        error_type: str | None = None,
        tool: str | None = None,
        protocol_version: str | None = None,
    ) -> None:
        """The gateway answered one request (`mcp.server.operation.duration`), in `duration` seconds.

        `error_type` as `sidecar.errors` decides it (a JSON-RPC code as a string, `tool_error`,
        `timeout` ...), None when it succeeded; `tool` is the exposed name, for `tools/call` of
        a tool the gateway offers (None otherwise: an unknown name would be a new series).
        Methods outside `KNOWN_METHODS` are counted as `_OTHER`.
        """
        method = method if method in KNOWN_METHODS else "_OTHER"
        self.record(
            server_operation(
                method, duration, error_type=error_type, tool=tool, protocol_version=protocol_version
            )
        )

    def record_server_session(
        self, duration: float, protocol_version: str | None = None, *, error_type: str | None = None
    ) -> None:
        """A gateway session ended after `duration` seconds (`mcp.server.session.duration`); its
        negotiated `protocol_version` tells the era; `error_type` only when an error ended it."""
        self.record(server_session(duration, protocol_version=protocol_version, error_type=error_type))

    def _sync(self, statuses: Sequence[ServerStatus]) -> list[tuple[_ServerSeries, ServerStatus]]:
        """Pair each status with its series: new servers get zeroed series, removed ones lose theirs."""
        pairs = []
        for status in statuses:
            series = self._series.get(status.name)
            if series is None:
                series = self._series[status.name] = _ServerSeries(status)
                self._stale.update(("counters", "tools", "layout"))
            pairs.append((series, status))
        if len(pairs) != len(self._series) or list(self._series) != [s.name for s, _ in pairs]:
            self._series = {series.name: series for series, _ in pairs}  # removed, or reordered
            self._stale.update(("state", "counters", "tools", "layout"))
            self._forget_removed(set(self._series))
        return pairs

    def _forget_removed(self, servers: set[str]) -> None:
        def gone(attributes: Attributes) -> bool:
            return any(key == SERVER_ATTRIBUTE and value not in servers for key, value in attributes)

        for family in self._conventions.values():
            family.forget(gone)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, openmetrics: bool = False) -> tuple[bytes, str]:
        """The whole exposition and its content type."""
        pairs = self._sync(self._statuses())
        changed, active, failed = False, 0, 0
        for series, status in pairs:
            changed = series.show(status) or changed  # every one must run
            state = status.state
            active += state is ServerState.ACTIVE
            failed += is_down(state)
        if changed:
            self._stale.add("state")
        self._rebuild([series for series, _ in pairs])
        process = (generate_openmetrics if openmetrics else generate_latest)(self._process)
        out = [process.removesuffix(b"# EOF\n")]
        for family, value in ((ACTIVE, active), (FAILED, failed), (CONFIGURED, len(pairs))):
            out += (family.header(openmetrics), f"{family.name} {value}\n".encode())
        for family in (*_STATE_FAMILIES, *_COUNTER_FAMILIES, CONNECT, PROBE, *_TOOL_FAMILIES, CALL_DURATION):
            out += (family.header(openmetrics), self._bodies[family])
        for convention in self._conventions.values():
            out.append(convention.family.header(openmetrics))
            out += convention.bodies()  # in chunks: joined once, below
        if openmetrics:
            out.append(b"# EOF\n")
        return b"".join(out), OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE

    def _rebuild(self, servers: list[_ServerSeries]) -> None:
        """Re-render the families that changed since the last scrape."""
        stale, self._stale = self._stale, set()
        groups: list[tuple[tuple[_Family, ...], Callable[[_ServerSeries], Sequence[str]]]] = []
        if "state" in stale:
            groups.append((_STATE_FAMILIES, lambda series: series.state_lines))
        if "counters" in stale:
            groups.append((_COUNTER_FAMILIES, _ServerSeries.counter_lines))
        if "tools" in stale:
            groups.append((_TOOL_FAMILIES, _ServerSeries.tool_lines))
        for families, lines_of in groups:
            rows = [lines_of(series) for series in servers]
            for i, family in enumerate(families):
                self._bodies[family] = "".join([row[i] for row in rows]).encode()
        if "layout" in stale:
            self._connect.set_members((series.server, series.connect) for series in servers)
            self._probe.set_members((series.server, series.probe) for series in servers)
            self._call.set_members(
                (t.labels, t.duration) for series in servers for t in series.tools.values()
            )
        for family in (self._connect, self._probe, self._call):
            self._bodies[family.family] = family.body()

    # -- for the OTLP export ------------------------------------------------------------------

    def contract_samples(self) -> Samples:
        """The contract's gauges and counters now, by family name (counters with `_total`).

        Safe to call from another thread (the OTLP exporter's): it copies before it iterates.
        """
        statuses = list(self._statuses())
        servers = list(self._series.values())
        samples: Samples = {
            family.name: [] for family in (*_STATE_FAMILIES, *_COUNTER_FAMILIES, *_TOOL_FAMILIES)
        }
        for status in statuses:
            server = {"server": status.name}
            identity = {**server, "transport": status.transport, "criticality": status.criticality}
            samples[UP.name].append((identity, 1.0 if status.state is ServerState.ACTIVE else 0.0))
            for state in _STATES:
                samples[STATE.name].append(({**server, "state": state}, float(state == status.state.value)))
            samples[CHANGED.name].append((server, status.since))
            samples[TOOLS.name].append((server, float(len(status.tools))))
            if status.server_name is not None or status.protocol_version is not None:
                info = {**server, "protocol_version": status.protocol_version or "",
                        "implementation": status.server_name or "",
                        "implementation_version": status.server_version or ""}  # fmt: skip
                samples[INFO.name].append((info, 1.0))
        for series in servers:
            server = {"server": series.name}
            samples[ATTEMPTS.name].append((server, series.reconnect_attempts))
            samples[ATTEMPT_FAILURES.name].append((server, series.reconnect_failures))
            samples[PROBE_FAILURES.name].append((server, series.health_check_failures))
            for reason, count in list(series.disconnects.items()):
                samples[DISCONNECTS.name].append(({**server, "reason": reason}, count))
            for tool in list(series.tools.values()):
                labels = {**server, "tool": tool.key}
                samples[CALLS.name].append((labels, tool.calls))
                for error_type, count in list(tool.errors.items()):
                    samples[CALL_ERRORS.name].append(({**labels, "error_type": error_type}, count))
        samples[ACTIVE.name] = [({}, float(sum(1 for s in statuses if s.state is ServerState.ACTIVE)))]
        samples[FAILED.name] = [({}, float(sum(1 for s in statuses if is_down(s.state))))]
        samples[CONFIGURED.name] = [({}, float(len(statuses)))]
        samples["mcp_sidecar_build_info"] = [(dict(_BUILD), 1.0)]
        samples["mcp_sidecar_internal_errors_total"] = [({}, float(self._internal_error_count))]
        return samples
