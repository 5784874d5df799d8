"""OTLP traces: lifecycle spans made from events after the fact, and gateway tool-call spans.

Export is configured only by the standard ``OTEL_*`` variables; with no endpoint (and
``OTEL_TRACES_EXPORTER`` not asking for ``otlp``) there is no provider and no cost.

A connect attempt is one INTERNAL span (``connect <server>``, or ``reconnect <server>``)
with a CLIENT child per MCP call it made (``initialize`` or ``server/discover``, then
``tools/list``). An outage is one trace: the ``lost`` span (or the failed first connect)
is the parent of every reconnect attempt and of the give-up and drop spans, until the
server is active again. Only failed probes make spans. Attribute names follow the
OpenTelemetry MCP conventions; the configured server name is always ``mcp_sidecar.server``.
Nothing from a server's env, args, headers or URL (other than host and port) goes on a span.
Every exported span, the mcp SDK's own too, has the config's secrets masked (`span_redaction`).
"""

from __future__ import annotations

import atexit
import contextvars
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ..config import ServerConfig, SidecarConfig
from ..errors import ServerUnavailable, describe_error, is_tool_error
from ..events import (
    Connected,
    ConnectFailed,
    Connecting,
    Dropped,
    GaveUp,
    HealthCheckFailed,
    HealthCheckPassed,
    LifecycleEvent,
    Lost,
    ReconnectAttempt,
    ReconnectScheduled,
    Stopped,
)
from .span_redaction import SpanRedactor

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "SERVER_ATTRIBUTE",
    "LifecycleTracer",
    "SpanRef",
    "ToolCall",
    "configure_tracing",
    "inject_meta",
    "mask_in_spans",
    "otlp_exporter_from_env",
    "server_attributes",
    "shutdown_tracing",
    "sidecar_resource",
    "tool_call_span",
]

DEFAULT_SERVICE_NAME = "mcp-sidecar"
SERVER_ATTRIBUTE = "mcp_sidecar.server"  # the configured name: one attribute, on every span
SHUTDOWN_TIMEOUT = 1.0  # seconds a flush at exit may take when the collector answers
_PATIENCE = 0.5  # an export running longer than this is stuck (black hole, or retrying a dead collector)
_SCOPE = "mcp-sidecar"
try:
    _SCOPE_VERSION = version("mcp-sidecar")
except PackageNotFoundError:  # a source tree that was never installed
    _SCOPE_VERSION = "0.0.0"
_PROTOCOLS = ("http/protobuf", "grpc")
_ROOT = Context()  # an explicit empty parent: lifecycle spans never nest under an ambient span

Attributes = dict[str, AttributeValue]


# -- provider from the environment -------------------------------------------------------------------


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def otlp_exporter_from_env() -> SpanExporter | None:
    """The OTLP span exporter the standard variables ask for, or None when they ask for none.

    The SDK exporters read endpoint, headers, timeout, TLS and compression themselves.
    """
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporters = [name.strip().lower() for name in _env("OTEL_TRACES_EXPORTER").split(",") if name.strip()]
    endpoint = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if ("otlp" not in exporters) if exporters else not endpoint:
        return None  # "none", an exporter we do not ship, or nowhere to send to
    protocol = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or "http/protobuf"
    # Imported on demand: grpc is slow to import, and most runs export nothing.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ValueError(f"OTLP protocol {protocol!r} is not supported; use one of: {', '.join(_PROTOCOLS)}")


_SDK_SCOPE = "mcp-python-sdk"
# The tool-call span (ours) that the SDK's `tools/call` send span is folded into, while it runs.
_FOLD_INTO: contextvars.ContextVar[Span | None] = contextvars.ContextVar("mcp_sidecar_fold", default=None)


class _FoldingTracer(trace.Tracer):
    """The mcp SDK's tracer. Its CLIENT span for sending `tools/call` would duplicate the one
    ``tools/call <tool>`` span of ours that is current (the conventions want one span per call):
    it is folded into ours instead. Ours takes its `jsonrpc.request.id`, and stays the current
    span, so the SDK injects our context into `params._meta`. Every other SDK span is its own."""

    def __init__(self, inner: trace.Tracer) -> None:
        self._inner = inner

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._inner.start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Span]:
        ours = _FOLD_INTO.get()
        attributes = kwargs.get("attributes") or {}
        if (
            ours is not None
            and attributes.get("mcp.method.name") == "tools/call"
            and kwargs.get("context") is None
            and trace.get_current_span() is ours
        ):
            request_id = attributes.get("jsonrpc.request.id")
            if request_id is not None:
                ours.set_attribute("jsonrpc.request.id", str(request_id))
            # What the SDK sets on this stand-in (its error.type, status) ours sets itself.
            yield NonRecordingSpan(ours.get_span_context())
            return
        with self._inner.start_as_current_span(name, *args, **kwargs) as span:
            yield span


class _SidecarTracerProvider(TracerProvider):
    """A TracerProvider whose tracer for the mcp SDK folds its tool-call spans into ours."""

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        tracer = super().get_tracer(instrumenting_module_name, *args, **kwargs)
        return _FoldingTracer(tracer) if instrumenting_module_name == _SDK_SCOPE else tracer


def _sdk_noise(span: ReadableSpan) -> bool:
    """A CLIENT span of the mcp SDK's own instrumentation with no parent: a probe, a handshake
    or a tools/list the lifecycle spans already tell (a span per probe is noise). Its spans
    under a tool call of ours stay: they carry the trace on to the server. Its SERVER spans
    (the gateway answering a client) always stay: they are the root of a gateway call."""
    scope = span.instrumentation_scope
    sdk_root = scope is not None and scope.name == _SDK_SCOPE and span.parent is None
    return sdk_root and span.kind is not SpanKind.SERVER


class _WatchedExporter(SpanExporter):
    """Delegates to the OTLP exporter, noting whether the collector answers, so that shutdown
    waits only when waiting can help. Drops the mcp SDK's own root spans (`_sdk_noise`), and
    masks secrets in the rest (`redactor`)."""

    def __init__(self, inner: SpanExporter, redactor: SpanRedactor | None = None) -> None:
        self.inner = inner
        self.redactor = redactor or SpanRedactor()
        self.failing = False
        self._running_since: float | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        spans = [self.redactor(span) for span in spans if not _sdk_noise(span)]
        if not spans:
            return SpanExportResult.SUCCESS
        self._running_since = time.monotonic()
        self.failing = True  # until it says otherwise (an exception leaves it so)
        try:
            result = self.inner.export(spans)
        finally:
            self._running_since = None
        self.failing = result is not SpanExportResult.SUCCESS
        return result

    def stuck(self) -> bool:
        since = self._running_since
        running_long = since is not None and time.monotonic() - since > _PATIENCE
        return running_long or (since is None and self.failing)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def sidecar_resource(service_version: str) -> Resource:
    """`service.name` (``mcp-sidecar`` unless `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` say
    otherwise) and `service.version`: the same for traces and metrics."""
    resource = Resource.create({SERVICE_VERSION: service_version})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


_WATCHED: weakref.WeakKeyDictionary[TracerProvider, _WatchedExporter] = weakref.WeakKeyDictionary()


def configure_tracing(
    service_version: str,
    *,
    set_global: bool = True,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    secrets: Iterable[str] = (),
) -> TracerProvider | None:
    """A TracerProvider exporting over OTLP in batches, or None when no export is configured.

    `OTEL_SERVICE_NAME` (default ``mcp-sidecar``), `OTEL_RESOURCE_ATTRIBUTES` and the
    sampler variables are honoured by the SDK. With `set_global` the provider becomes the
    global one, which `tool_call_span` uses. Raises ValueError for an unsupported protocol.
    A bounded `shutdown_tracing` runs at exit; call it yourself to flush earlier. `secrets`
    are masked in every span it exports, the mcp SDK's too (more: `mask_in_spans`).
    """
    exporter = otlp_exporter_from_env()
    if exporter is None:
        return None
    resource = sidecar_resource(service_version)
    # The SDK's own exit hook would wait up to 30 s for an unreachable collector.
    provider = _SidecarTracerProvider(resource=resource, shutdown_on_exit=False)
    watched = _WATCHED[provider] = _WatchedExporter(exporter, SpanRedactor(secrets))
    provider.add_span_processor(BatchSpanProcessor(watched))
    atexit.register(shutdown_tracing, provider, shutdown_timeout)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def mask_in_spans(provider: trace.TracerProvider | None, secrets: Iterable[str]) -> None:
    """Mask `secrets` too in every span `provider` exports from now on (those of a reloaded
    config); those it masked already stay masked. A provider `configure_tracing` did not make
    (a library user's own) is left alone: what it exports is its owner's choice."""
    watched = _WATCHED.get(provider) if isinstance(provider, TracerProvider) else None
    if watched is not None:
        watched.redactor.add(secrets)


def shutdown_tracing(provider: TracerProvider | None, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
    """Flush and stop `provider` within `timeout` s, and at once when its collector is not answering.

    True if it finished. The SDK's shutdown may block for the exporter's whole retry budget
    (10 s by default), so it runs in a daemon thread that is abandoned when the deadline
    passes or the export is stuck. It blocks the caller: call it after the event loop, or
    in a worker thread.
    """
    if provider is None:
        return True
    watched = _WATCHED.get(provider)
    worker = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    while worker.is_alive() and (remaining := deadline - time.monotonic()) > 0:
        if watched is not None and watched.stuck():
            break  # waiting cannot help: spans still queued are lost either way
        worker.join(min(remaining, 0.02))
    return not worker.is_alive()


# -- attributes ----------------------------------------------------------------------------------------


def _network_transport(transport: str) -> str:
    return "pipe" if transport == "stdio" else "tcp"


def _basic_attributes(server: str, transport: str) -> Attributes:
    return {
        SERVER_ATTRIBUTE: server,
        "mcp_sidecar.transport": transport,
        "network.transport": _network_transport(transport),
    }


def server_attributes(config: ServerConfig) -> Attributes:
    """What spans may say about a configured server: name, transport, and host and port for HTTP.

    Never the URL (it may hold credentials in userinfo or query), headers, env or args.
    """
    attributes = _basic_attributes(config.name, config.transport)
    if config.url:
        parts = urlsplit(config.url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        attributes["network.protocol.name"] = "http"
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _parent(context: SpanContext | None) -> Context:
    return _ROOT if context is None else trace.set_span_in_context(NonRecordingSpan(context), _ROOT)


def _fail(span: Span, error_type: str, description: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))


@dataclass(frozen=True, slots=True)
class SpanRef:
    """The ids of the span that stands for one event, as lower-case hex (for log lines)."""

    trace_id: str
    span_id: str

    @classmethod
    def of(cls, context: SpanContext | None) -> SpanRef | None:
        """None for no span, and for a span the sampler dropped: no backend will ever show it."""
        if context is None or not context.is_valid or not context.trace_flags.sampled:
            return None
        return cls(format(context.trace_id, "032x"), format(context.span_id, "016x"))


# -- lifecycle spans -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Track:
    """What one server's spans still need from earlier events."""

    attempt: Span | None = None  # the connect attempt under way
    outage: SpanContext | None = None  # parent of what follows, until active again
    failed_probes: list[SpanContext] = field(default_factory=list)  # this streak, linked from `lost`
    protocol_version: str | None = None


class LifecycleTracer:
    """Turns lifecycle events into spans, with times taken from the events.

    Feed it every event of one subscription, in order (`observe`). With no provider it
    does nothing and returns None at once.
    """

    def __init__(
        self,
        provider: trace.TracerProvider | None,
        servers: SidecarConfig | Iterable[ServerConfig] = (),
    ) -> None:
        self._provider = provider
        self._tracer = None if provider is None else provider.get_tracer(_SCOPE, _SCOPE_VERSION)
        self._static: dict[str, Attributes] = {}
        self._tracks: dict[str, _Track] = {}
        self.use_config(servers)
        self._handlers: dict[type[LifecycleEvent], Callable[[Any, _Track], SpanContext | None]] = {
            Connecting: self._attempt_started,
            ReconnectAttempt: self._attempt_started,
            Connected: self._connected,
            ConnectFailed: self._connect_failed,
            HealthCheckPassed: self._probe_passed,
            HealthCheckFailed: self._probe_failed,
            Lost: self._lost,
            ReconnectScheduled: lambda event, track: track.outage,
            GaveUp: self._out_of_service,
            Dropped: self._out_of_service,
            Stopped: self._stopped,
        }

    def use_config(self, servers: SidecarConfig | Iterable[ServerConfig]) -> None:
        """Take host, port and transport of each server from this config (after a reload, too),
        and have the provider mask the config's secrets (new ones on a reload) in what it exports."""
        if isinstance(servers, SidecarConfig):
            mask_in_spans(self._provider, servers.secrets())
        configs = servers.servers if isinstance(servers, SidecarConfig) else servers
        self._static = {config.name: server_attributes(config) for config in configs}

    def observe(self, event: LifecycleEvent) -> SpanRef | None:
        """Make the spans `event` completes; return the span that stands for it, if any.

        Attempt events return their attempt's span (open until the outcome arrives);
        `reconnect_scheduled` returns the outage's span; passing probes return None.
        """
        if self._tracer is None:
            return None
        handler = self._handlers.get(type(event))
        if handler is None:
            return None
        track = self._tracks.setdefault(event.server, _Track())
        return SpanRef.of(handler(event, track))

    # Attempts ------------------------------------------------------------------------------

    def _attributes(self, event: LifecycleEvent, track: _Track) -> Attributes:
        static = self._static.get(event.server)
        if static is None:  # not in the config we were given: what the event says
            static = _basic_attributes(event.server, event.transport)
        attributes = {**static, "mcp_sidecar.criticality": event.criticality}
        if track.protocol_version:
            attributes["mcp.protocol.version"] = track.protocol_version
        return attributes

    def _start(
        self,
        name: str,
        event: LifecycleEvent,
        track: _Track,
        start: float,
        *,
        parent: SpanContext | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        extra: Attributes | None = None,
        links: Iterable[Link] = (),
    ) -> Span:
        assert self._tracer is not None
        return self._tracer.start_span(
            name,
            context=_parent(parent),
            kind=kind,
            attributes={**self._attributes(event, track), **(extra or {})},
            links=list(links),
            start_time=_ns(start),
        )

    def _open_attempt(self, event: LifecycleEvent, track: _Track, attempt: int, start: float) -> Span:
        verb = "connect" if attempt == 0 else "reconnect"
        parent = None if attempt == 0 else track.outage
        return self._start(
            f"{verb} {event.server}",
            event,
            track,
            start,
            parent=parent,
            extra={"mcp_sidecar.attempt": attempt},
        )

    def _attempt_started(self, event: Connecting | ReconnectAttempt, track: _Track) -> SpanContext:
        self._abandon_attempt(track, event.ts)  # its outcome never came (a subscriber fell behind)
        attempt = event.attempt if isinstance(event, ReconnectAttempt) else 0
        track.attempt = self._open_attempt(event, track, attempt, event.ts)
        return track.attempt.get_span_context()

    def _take_attempt(self, event: Connected | ConnectFailed, track: _Track) -> Span:
        span, track.attempt = track.attempt, None
        if span is None:  # the start was not seen: made after the fact from the duration
            span = self._open_attempt(event, track, event.attempt, event.ts - event.duration)
        return span

    def _calls(self, span: Span, event: Connected | ConnectFailed, track: _Track, error: str | None) -> float:
        """One CLIENT child per MCP call of the attempt; returns when the last one ended."""
        parent = span.get_span_context()
        ended = event.ts
        for phase in event.phases:
            child = self._start(
                phase.name,
                event,
                track,
                phase.started,
                parent=parent,
                kind=SpanKind.CLIENT,
                extra={"mcp.method.name": phase.name},
            )
            if phase.error_type is not None:
                _fail(child, phase.error_type, error or phase.error_type)
            child.end(_ns(phase.ended))
            ended = max(ended, phase.ended)
        return ended

    def _connected(self, event: Connected, track: _Track) -> SpanContext:
        span = self._take_attempt(event, track)
        track.protocol_version = event.protocol_version
        track.outage = None  # active again: the outage's trace is complete
        track.failed_probes.clear()
        if event.protocol_version:
            span.set_attribute("mcp.protocol.version", event.protocol_version)
        span.set_attribute("mcp_sidecar.tools", len(event.tools))
        ended = self._calls(span, event, track, None)
        span.end(_ns(ended))
        return span.get_span_context()

    def _connect_failed(self, event: ConnectFailed, track: _Track) -> SpanContext:
        span = self._take_attempt(event, track)
        track.protocol_version = None  # not negotiated: children must not claim the old one
        ended = self._calls(span, event, track, event.error)
        _fail(span, event.error_type, event.error)
        span.end(_ns(ended))
        context = span.get_span_context()
        if track.outage is None:  # a first connect that failed starts the outage
            track.outage = context
        return context

    def _abandon_attempt(self, track: _Track, ts: float) -> None:
        """End an attempt that was cut short (stop, drop) without an outcome event."""
        span, track.attempt = track.attempt, None
        if span is not None:
            span.set_attribute("mcp_sidecar.cancelled", True)
            span.end(_ns(ts))

    # Health, loss, give-up, drop, stop -----------------------------------------------------

    def _probe_passed(self, event: HealthCheckPassed, track: _Track) -> None:
        track.failed_probes.clear()  # the streak is over

    def _probe_failed(self, event: HealthCheckFailed, track: _Track) -> SpanContext:
        legacy = track.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        method = "ping" if legacy else "server/discover"
        span = self._start(
            method,
            event,
            track,
            event.ts - event.duration,
            kind=SpanKind.CLIENT,
            extra={
                "mcp.method.name": method,
                "mcp_sidecar.health_check.consecutive_failures": event.consecutive_failures,
            },
        )
        _fail(span, event.error_type, event.error)
        span.end(_ns(event.ts))
        track.failed_probes.append(span.get_span_context())
        return span.get_span_context()

    def _lost(self, event: Lost, track: _Track) -> SpanContext:
        links = [Link(context) for context in track.failed_probes]
        track.failed_probes = []
        span = self._start(
            f"lost {event.server}",
            event,
            track,
            event.ts,
            extra={"mcp_sidecar.reason": event.reason, "mcp_sidecar.connected_for_s": event.connected_for},
            links=links,
        )
        _fail(span, event.reason, event.error)
        span.end(_ns(event.ts))
        track.outage = span.get_span_context()
        track.protocol_version = None
        return track.outage

    def _out_of_service(self, event: GaveUp | Dropped, track: _Track) -> SpanContext:
        self._abandon_attempt(track, event.ts)
        if isinstance(event, GaveUp):
            extra: Attributes = {"mcp_sidecar.attempts": event.attempts}
        else:
            extra = {"mcp_sidecar.reason": event.reason}
        span = self._start(
            f"{event.kind} {event.server}", event, track, event.ts, parent=track.outage, extra=extra
        )
        if isinstance(event, GaveUp):
            _fail(span, "gave_up", event.error or "reconnect attempts exhausted")
        elif event.reason == "policy":
            _fail(span, "dropped", "dropped after the last reconnect attempt failed")
        span.end(_ns(event.ts))
        if track.outage is None:  # dropped by hand while active: a later reconnect belongs here
            track.outage = span.get_span_context()
        return span.get_span_context()

    def _stopped(self, event: Stopped, track: _Track) -> None:
        self._abandon_attempt(track, event.ts)
        self._tracks.pop(event.server, None)


# -- gateway tool calls --------------------------------------------------------------------------------


class ToolCall:
    """The span of one tool call; tell it the result so a tool-reported error shows."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def set_protocol_version(self, version: str | None) -> None:
        """The connection's negotiated version, once the call has one."""
        if version:
            self.span.set_attribute("mcp.protocol.version", version)

    def result(self, result: Any) -> None:
        """A result with `is_error` set (model or JSON) marks the span ERROR with `error.type=tool_error`."""
        if is_tool_error(result):
            _fail(self.span, "tool_error", "the tool reported an error")


def _error_type(exc: Exception) -> tuple[str, str]:
    """(error.type, status description): the type as `describe_error` decides it for metrics and
    logs too; the description never from the text below (an HTTP error naming its URL may
    carry credentials), only states and already-redacted reasons."""
    error_type, _ = describe_error(exc)
    if isinstance(exc, ServerUnavailable):
        return error_type, exc.reason
    if isinstance(exc, MCPError):
        return error_type, f"MCP error {exc.code}"
    return error_type, error_type


def _incoming(carrier: Mapping[str, Any] | None) -> Context | None:
    """The caller's context from a W3C `traceparent` in `carrier`; None: keep the current one."""
    if not carrier:
        return None
    text = {key: value for key, value in carrier.items() if isinstance(value, str)}
    return propagate.extract(text) if "traceparent" in text else None


@contextmanager
def tool_call_span(
    server: str,
    tool: str,
    transport: str,
    *,
    config: ServerConfig | None = None,
    carrier: Mapping[str, Any] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[ToolCall]:
    """A CLIENT span ``tools/call <tool>`` around one call, current while the block runs: the one
    span of the call (the mcp SDK's own send span is folded into it, see `_FoldingTracer`).

    It continues the current context, or the caller's `traceparent` found in `carrier`
    (request headers, or the `params._meta` the caller sent). Exceptions mark it ERROR
    with their `error.type` and are re-raised. Uses the global provider unless given one.
    """
    tracer = trace.get_tracer(_SCOPE, _SCOPE_VERSION, tracer_provider=tracer_provider)
    attributes = server_attributes(config) if config is not None else _basic_attributes(server, transport)
    attributes |= {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": tool,
        "gen_ai.operation.name": "execute_tool",
    }
    with tracer.start_as_current_span(
        f"tools/call {tool}",
        context=_incoming(carrier),
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,  # its message and traceback could carry secrets
        set_status_on_exception=False,
    ) as span:
        fold = _FOLD_INTO.set(span)
        try:
            yield ToolCall(span)
        except Exception as exc:
            error_type, description = _error_type(exc)
            if isinstance(exc, MCPError):
                span.set_attribute("rpc.response.status_code", str(exc.code))
            _fail(span, error_type, description)
            raise
        except BaseException:
            _fail(span, "cancelled", "cancelled")
            raise
        finally:
            _FOLD_INTO.reset(fold)


def inject_meta() -> dict[str, str]:
    """The current trace context as W3C fields (``traceparent``, ``tracestate`` if any) for
    ``params._meta``, so the called server can continue the trace. Empty without a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
