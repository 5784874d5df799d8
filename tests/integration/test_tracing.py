"""Lifecycle and tool-call spans, exported over OTLP (http/protobuf and gRPC) to a receiver in the test.

A real `MCPServerManager` runs real servers (tests/servers/behaving.py); its events feed a
`LifecycleTracer` whose provider comes from `configure_tracing` and the standard OTEL_*
variables. The receivers (tests/otlp.py) decode what arrives, and keep the raw bytes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from otlp import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    STATUS_UNSET,
    OTLPReceiver,
    ReceivedSpan,
    grpc_receiver,
    http_receiver,
)
from support import free_port, spellings

from sidecar import MCPServerManager, ServerConfig, ServerUnavailable, ToolCallTimeout, parse_config
from sidecar.events import Connected, LifecycleEvent, Subscription
from sidecar.telemetry.tracing import (
    LifecycleTracer,
    SpanRef,
    configure_tracing,
    inject_meta,
    otlp_exporter_from_env,
    shutdown_tracing,
    tool_call_span,
)

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard, Service

pytestmark = pytest.mark.anyio

CANARY_ENV = "canary-trace-env-5f3a9c71"
CANARY_HEADER = "canary-trace-header-81d2e7b4"
SERVER = "mcp_sidecar.server"
VERSION = "9.9.9-test"
_OTEL_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
)
Refs = list[tuple[LifecycleEvent, SpanRef | None]]


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_* variable from the outside world; the test sets what it needs."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def _feed(subscription: Subscription, tracer: LifecycleTracer, refs: Refs) -> None:
    async for event in subscription:
        refs.append((event, tracer.observe(event)))


@asynccontextmanager
async def traced(
    manager: MCPServerManager, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, refs: Refs
) -> AsyncIterator[MCPServerManager]:
    """Run `manager` with its events turned into spans exported to `receiver`; flush at the end."""
    for name, value in receiver.env().items():
        monkeypatch.setenv(name, value)
    provider = configure_tracing(VERSION, set_global=False)
    assert isinstance(provider, TracerProvider)
    tracer = LifecycleTracer(provider, [manager.config(s.name) for s in manager.all_servers])
    subscription = manager.subscribe(max_buffer=10_000)  # before entering: `connecting` too
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_feed, subscription, tracer, refs)
            async with manager:
                yield manager
            # The bus closes as the manager leaves: the feed ends after the last event.
    finally:
        # The exporter posts from the SDK's thread to the receiver in this loop: never block it.
        flushed = await anyio.to_thread.run_sync(shutdown_tracing, provider, 10.0)
    assert flushed, "spans were not flushed within 10 s"


def _one(spans: list[ReceivedSpan], what: str) -> ReceivedSpan:
    assert len(spans) == 1, f"{len(spans)} spans for {what}: {[s.name for s in spans]}"
    return spans[0]


def _calls(receiver: OTLPReceiver, parent: ReceivedSpan) -> list[ReceivedSpan]:
    """The MCP calls made under `parent` (CLIENT children), in order."""
    found = [s for s in receiver.spans if s.parent_span_id == parent.span_id and s.kind == KIND_CLIENT]
    return sorted(found, key=lambda s: s.start_ns)


def _ref(refs: Refs, server: str, kind: str, nth: int = 0) -> SpanRef:
    matching = [ref for event, ref in refs if event.server == server and event.kind == kind]
    assert len(matching) > nth, f"no {kind} #{nth} for {server}"
    ref = matching[nth]
    assert ref is not None, f"{server} {kind} #{nth} has no span"
    return ref


def _assert_is(span: ReceivedSpan, ref: SpanRef) -> None:
    assert (span.trace_id, span.span_id) == (ref.trace_id, ref.span_id), span.name


def _probes(receiver: OTLPReceiver) -> list[ReceivedSpan]:
    return [s for s in receiver.spans if "mcp_sidecar.health_check.consecutive_failures" in s.attributes]


def _handshake(protocol_version: str | None) -> str:
    return "initialize" if protocol_version in HANDSHAKE_PROTOCOL_VERSIONS else "server/discover"


def check_connect(
    receiver: OTLPReceiver, span: ReceivedSpan, server: str, protocol_version: str, attempt: int
) -> None:
    """A successful attempt: INTERNAL, with the handshake and tools/list as timed CLIENT children."""
    assert span.kind == KIND_INTERNAL and span.status_code == STATUS_UNSET, span
    assert span.attributes[SERVER] == server
    assert span.attributes["mcp_sidecar.attempt"] == attempt
    assert span.attributes["mcp.protocol.version"] == protocol_version
    assert span.attributes["mcp_sidecar.tools"] == 4
    children = _calls(receiver, span)
    assert [c.name for c in children] == [_handshake(protocol_version), "tools/list"], children
    for child in children:
        assert child.status_code == STATUS_UNSET, child
        assert child.trace_id == span.trace_id
        assert child.attributes["mcp.method.name"] == child.name
        assert child.attributes[SERVER] == server
        assert child.attributes["mcp.protocol.version"] == protocol_version
        assert span.start_ns <= child.start_ns <= child.end_ns <= span.end_ns, (span, child)
    assert children[0].end_ns <= children[1].start_ns


def check_killed_and_back(receiver: OTLPReceiver, refs: Refs, server: str, protocol_version: str) -> None:
    """connect -> (SIGKILL) lost -> reconnect under lost, in the outage's one trace."""
    connect = _one(receiver.named(f"connect {server}"), "connect")
    _assert_is(connect, _ref(refs, server, "connected"))
    _assert_is(connect, _ref(refs, server, "connecting"))  # the same span, opened at `connecting`
    assert connect.parent_span_id == ""
    check_connect(receiver, connect, server, protocol_version, attempt=0)
    assert connect.attributes["network.transport"] == "pipe"
    assert connect.attributes["mcp_sidecar.transport"] == "stdio"
    assert "server.address" not in connect.attributes

    lost = _one(receiver.named(f"lost {server}"), "lost")
    _assert_is(lost, _ref(refs, server, "lost"))
    assert lost.parent_span_id == "" and lost.trace_id != connect.trace_id
    assert lost.status_code == STATUS_ERROR and lost.attributes["error.type"] == "exited"
    assert lost.attributes["mcp_sidecar.reason"] == "exited"
    assert "SIGKILL" in lost.status_message, lost.status_message

    reconnect = _one(receiver.named(f"reconnect {server}"), "reconnect")
    _assert_is(reconnect, _ref(refs, server, "reconnect_attempt"))
    _assert_is(reconnect, _ref(refs, server, "connected", 1))
    assert _ref(refs, server, "reconnect_scheduled") == _ref(refs, server, "lost")
    assert (reconnect.trace_id, reconnect.parent_span_id) == (lost.trace_id, lost.span_id)
    check_connect(receiver, reconnect, server, protocol_version, attempt=1)
    assert reconnect.start_ns >= lost.end_ns

    # Probes: many passed, and only failures (if the kill caught one in flight) made spans.
    kinds = [event.kind for event, _ in refs if event.server == server]
    assert kinds.count("health_check_passed") >= 2
    probes = [s for s in _probes(receiver) if s.attributes[SERVER] == server]
    assert len(probes) == kinds.count("health_check_failed"), probes


def check_crash_at_start(receiver: OTLPReceiver, refs: Refs, server: str) -> None:
    """A first connect that fails starts the outage: retries, give-up and drop hang under it."""
    connect = _one(receiver.named(f"connect {server}"), "connect")
    assert connect.parent_span_id == "" and connect.status_code == STATUS_ERROR
    assert connect.attributes["error.type"] == "exited"
    assert "exited with code 1" in connect.status_message, connect.status_message
    assert "mcp.protocol.version" not in connect.attributes
    # The handshake failed and nothing after it ran: one child, failed the same way.
    (handshake,) = _calls(receiver, connect)
    assert handshake.name == "initialize" and handshake.kind == KIND_CLIENT
    assert handshake.status_code == STATUS_ERROR and handshake.attributes["error.type"] == "exited"
    assert handshake.attributes["mcp.method.name"] == "initialize"

    reconnect = _one(receiver.named(f"reconnect {server}"), "reconnect")
    assert (reconnect.trace_id, reconnect.parent_span_id) == (connect.trace_id, connect.span_id)
    assert reconnect.status_code == STATUS_ERROR and reconnect.attributes["error.type"] == "exited"
    gave_up = _one(receiver.named(f"gave_up {server}"), "gave_up")
    _assert_is(gave_up, _ref(refs, server, "gave_up"))
    assert gave_up.parent_span_id == connect.span_id and gave_up.status_code == STATUS_ERROR
    assert gave_up.attributes["error.type"] == "gave_up" and gave_up.attributes["mcp_sidecar.attempts"] == 1
    dropped = _one(receiver.named(f"dropped {server}"), "dropped")
    assert dropped.parent_span_id == connect.span_id and dropped.attributes["mcp_sidecar.reason"] == "policy"
    assert {s.trace_id for s in receiver.spans if s.attributes.get(SERVER) == server} == {connect.trace_id}


def check_resource_and_secrets(receiver: OTLPReceiver) -> None:
    assert receiver.spans
    for span in receiver.spans:
        assert span.resource["service.name"] == "mcp-sidecar"
        assert span.resource["service.version"] == VERSION
        assert span.scope == "mcp-sidecar"
    raw = receiver.raw()
    assert b"crashing" in raw  # strings travel as plain UTF-8: a leaked secret would be found
    for canary in (CANARY_ENV, CANARY_HEADER):
        assert canary.encode() not in raw, f"{canary} was exported"
    assert b"API_TOKEN" not in raw and b"Authorization" not in raw


def passed_probes(server: str, n: int) -> Callable[[LifecycleEvent], bool]:
    """Predicate: true at the `n`th passing probe of `server`."""
    seen = [0]

    def match(event: LifecycleEvent) -> bool:
        seen[0] += event.server == server and event.kind == "health_check_passed"
        return seen[0] >= n

    return match


def crashing(python_server: Callable[..., ServerConfig]) -> ServerConfig:
    return python_server("--crash-at-start", name="crashing", reconnect={"max_attempts": 1})


async def test_lifecycle_spans_over_http_protobuf(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    http_server: Callable[..., Awaitable[Service]],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[[LifecycleEvent], bool]],
    otel_env: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    web = await http_server("streamable-http")
    configs = [
        python_server(name="steady", env={"API_TOKEN": CANARY_ENV}),
        # Answers one tool call, then hangs: probes fail (legacy era: `ping`) until it is replaced.
        python_server("--hang-after-calls", "1", name="hanging", protocol="legacy"),
        crashing(python_server),
        server_config(
            "web", "streamable-http", url=web.url, headers={"Authorization": f"Bearer {CANARY_HEADER}"}
        ),
    ]
    manager = MCPServerManager(configs, shutdown_timeout=0.5)
    events = watch(manager)
    refs: Refs = []
    async with http_receiver() as receiver, traced(manager, receiver, otel_env, refs):
        assert [s.name for s in manager.active_servers] == ["steady", "hanging", "web"], manager.errors
        await manager.call_tool("hanging", "echo", {"text": "last answer"})
        await events.wait_for(passed_probes("steady", 2), timeout=5)  # they must make no span
        mark = events.mark()
        pid = manager.status("steady").pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for server in ("steady", "hanging"):
            await events.wait_for(is_event(server, "connected", attempt=1), timeout=15, after=mark)
        await events.wait_for(is_event("crashing", "dropped"), timeout=10)
        versions = {s.name: s.protocol_version for s in manager.statuses() if s.protocol_version}
    leak_guard.assert_clean()

    check_killed_and_back(receiver, refs, "steady", versions["steady"])
    check_crash_at_start(receiver, refs, "crashing")
    check_resource_and_secrets(receiver)

    # Failed probes: CLIENT `ping` spans with the error; `lost` links the streak and roots the outage.
    hanging_version = versions["hanging"]
    assert hanging_version in HANDSHAKE_PROTOCOL_VERSIONS
    lost = _one(receiver.named("lost hanging"), "lost")
    probes = [s for s in _probes(receiver) if s.attributes[SERVER] == "hanging" and s.end_ns <= lost.end_ns]
    assert len(probes) == 2, probes  # failure_threshold
    for probe in probes:
        assert probe.name == "ping" and probe.kind == KIND_CLIENT and probe.status_code == STATUS_ERROR
        assert probe.attributes["error.type"] == "probe_timeout"
        assert probe.attributes["mcp.method.name"] == "ping"
        assert probe.attributes["mcp.protocol.version"] == hanging_version
        assert "no answer to the probe" in probe.status_message
    assert [p.attributes["mcp_sidecar.health_check.consecutive_failures"] for p in probes] == [1, 2]
    assert lost.attributes["error.type"] == "probe_timeout" and lost.status_code == STATUS_ERROR
    assert set(lost.links) == {(p.trace_id, p.span_id) for p in probes}
    reconnect = _one(receiver.named("reconnect hanging"), "reconnect")
    assert reconnect.parent_span_id == lost.span_id
    check_connect(receiver, reconnect, "hanging", hanging_version, attempt=1)

    # An HTTP server: tcp, host and port from the config; never the URL or its headers.
    connect = _one(receiver.named("connect web"), "connect")
    check_connect(receiver, connect, "web", versions["web"], attempt=0)
    assert connect.attributes["network.transport"] == "tcp"
    assert connect.attributes["mcp_sidecar.transport"] == "streamable-http"
    assert connect.attributes["server.address"] == "127.0.0.1"
    assert connect.attributes["server.port"] == web.port
    assert web.url.encode() not in receiver.raw()


async def test_lifecycle_spans_over_grpc(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[[LifecycleEvent], bool]],
    otel_env: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    configs = [python_server(name="steady", env={"API_TOKEN": CANARY_ENV}), crashing(python_server)]
    manager = MCPServerManager(configs, shutdown_timeout=0.5)
    events = watch(manager)
    refs: Refs = []
    async with grpc_receiver() as receiver, traced(manager, receiver, otel_env, refs):
        assert [s.name for s in manager.active_servers] == ["steady"], manager.errors
        await events.wait_for(passed_probes("steady", 2), timeout=5)  # they must make no span
        mark = events.mark()
        pid = manager.status("steady").pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        connected = await events.wait_for(is_event("steady", "connected", attempt=1), timeout=15, after=mark)
        await events.wait_for(is_event("crashing", "dropped"), timeout=10)
    leak_guard.assert_clean()
    assert isinstance(connected, Connected) and connected.protocol_version
    assert receiver.bodies, "nothing arrived over gRPC"
    check_killed_and_back(receiver, refs, "steady", connected.protocol_version)
    check_crash_at_start(receiver, refs, "crashing")
    check_resource_and_secrets(receiver)


async def test_tool_call_span_continues_the_callers_trace(
    python_server: Callable[..., ServerConfig], otel_env: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    incoming = {"traceparent": f"00-{caller_trace}-{caller_span}-01", "progressToken": 7}
    async with http_receiver() as receiver:
        for name, value in receiver.env().items():
            otel_env.setenv(name, value)
        provider = configure_tracing(VERSION, set_global=False)
        assert provider is not None
        try:
            config = python_server(name="tools")
            async with MCPServerManager([config], shutdown_timeout=0.5) as manager:
                version = manager.status("tools").protocol_version
                # What MCPServerManager.call_tool will do: the span around the call, its context in _meta.
                with tool_call_span(
                    "tools",
                    "echo",
                    "stdio",
                    config=config,
                    carrier=incoming,
                    tracer_provider=provider,
                ) as call:
                    call.set_protocol_version(version)
                    meta = inject_meta()
                    result = await manager.call_tool(
                        "tools", "echo", {"text": "hi"}, meta={**incoming, **meta}
                    )
                    call.result(result)
                # No carrier: the span continues whatever is current (here, the agent's own span).
                with provider.get_tracer("agent").start_as_current_span("agent step") as step:
                    with tool_call_span("tools", "missing", "stdio", tracer_provider=provider) as call:
                        call.result(await manager.call_tool("tools", "no_such_tool", {}))
                    with (
                        pytest.raises(ToolCallTimeout),
                        tool_call_span("tools", "sleep", "stdio", tracer_provider=provider),
                    ):
                        await manager.call_tool("tools", "sleep", {"seconds": 5}, timeout=0.2)
                with (
                    pytest.raises(ServerUnavailable),
                    tool_call_span("gone", "echo", "stdio", tracer_provider=provider),
                ):
                    await manager.call_tool("gone", "echo", {})
        finally:
            flushed = await anyio.to_thread.run_sync(shutdown_tracing, provider, 10.0)
        assert flushed
    leak_guard.assert_clean()

    echo = _one([s for s in receiver.named("tools/call echo") if s.attributes[SERVER] == "tools"], "echo")
    assert (echo.trace_id, echo.parent_span_id) == (caller_trace, caller_span)
    assert meta == {"traceparent": f"00-{caller_trace}-{echo.span_id}-01"}
    assert echo.kind == KIND_CLIENT and echo.status_code == STATUS_UNSET
    assert echo.attributes == {
        SERVER: "tools",
        "mcp_sidecar.transport": "stdio",
        "network.transport": "pipe",
        "mcp.method.name": "tools/call",
        "mcp.protocol.version": version,
        "gen_ai.tool.name": "echo",
        "gen_ai.operation.name": "execute_tool",
    }
    agent = _one(receiver.named("agent step"), "agent step")
    assert format(step.get_span_context().span_id, "016x") == agent.span_id
    missing = _one(receiver.named("tools/call missing"), "missing")
    assert (missing.trace_id, missing.parent_span_id) == (agent.trace_id, agent.span_id)
    assert missing.status_code == STATUS_ERROR and missing.attributes["error.type"] == "tool_error"
    slow = _one(receiver.named("tools/call sleep"), "sleep")
    assert slow.parent_span_id == agent.span_id and slow.status_code == STATUS_ERROR
    assert slow.attributes["error.type"] == "timeout"
    gone = _one([s for s in receiver.spans if s.attributes.get(SERVER) == "gone"], "gone")
    assert gone.status_code == STATUS_ERROR and gone.attributes["error.type"] == "unavailable"
    assert "no such server" in gone.status_message


_SECRETS_CONFIG = """\
sidecar:
  gateway: {listen: '127.0.0.1:9465', token_env: GATEWAY_TOKEN}
servers:
  - name: remote
    transport: streamable-http
    url: http://127.0.0.1:9/mcp
    headers: {Authorization: 'Bearer ${HEADER_TOKEN}'}
"""


async def test_every_exported_span_has_the_configs_secrets_masked(
    otel_env: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    """Not only our spans: the mcp SDK names its SERVER span after the tool a gateway client asked
    for, and quotes an upstream's error in its status. The secrets (the gateway's token among
    them) are the config's at start, and a reloaded config's from then on."""
    token, first, second = (f"{kind}-can'ary\\\"{os.urandom(4).hex()}" for kind in ("gw", "hdr1", "hdr2"))
    environ = {"GATEWAY_TOKEN": token, "HEADER_TOKEN": first}
    config = parse_config(_SECRETS_CONFIG, "first.yaml", environ)
    reloaded = parse_config(_SECRETS_CONFIG, "second.yaml", environ | {"HEADER_TOKEN": second})

    def answer(sdk: Any, asked: str, error: str) -> None:  # as the mcp SDK traces a failing request
        with sdk.start_as_current_span(f"tools/call {asked}", kind=SpanKind.SERVER) as span:
            span.record_exception(ValueError(error))
            span.set_status(StatusCode.ERROR, error)

    async with http_receiver() as receiver:
        for name, value in receiver.env().items():
            otel_env.setenv(name, value)
        provider = configure_tracing(VERSION, set_global=False, secrets=config.secrets())
        assert provider is not None
        try:
            tracer = LifecycleTracer(provider, config)
            sdk = provider.get_tracer("mcp-python-sdk")
            answer(sdk, f"remote__{token}", f"Unknown resource: mcp-sidecar://remote/{first}")
            await receiver.wait_for(lambda s: s.name == "tools/call remote__***", 10, "the first span")
            tracer.use_config(reloaded)  # as a reload does: its new secret is masked from now on
            answer(sdk, f"remote__{second}", f"Unknown tool: {second} (and {token})")
        finally:
            flushed = await anyio.to_thread.run_sync(shutdown_tracing, provider, 10.0)
        assert flushed
    leak_guard.assert_clean()

    masked = receiver.named("tools/call remote__***")
    assert sorted(s.status_message for s in masked) == [
        "Unknown resource: mcp-sidecar://remote/***",
        "Unknown tool: *** (and ***)",
    ]
    for secret in (token, first, second):
        for spelling in spellings(secret):
            assert spelling.encode() not in receiver.raw(), spelling


# -- configuration from the environment ------------------------------------------------------------------


@contextmanager
def exporter_from_env() -> Iterator[Any]:
    exporter = otlp_exporter_from_env()
    try:
        yield exporter
    finally:
        if exporter is not None:
            exporter.shutdown()


def test_no_endpoint_no_provider(otel_env: pytest.MonkeyPatch) -> None:
    assert configure_tracing(VERSION, set_global=False) is None
    otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # a protocol alone says nowhere to send
    assert configure_tracing(VERSION, set_global=False) is None
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    for exporters in ("none", "console", "zipkin"):
        otel_env.setenv("OTEL_TRACES_EXPORTER", exporters)
        assert configure_tracing(VERSION, set_global=False) is None, exporters
    otel_env.delenv("OTEL_TRACES_EXPORTER")
    otel_env.setenv("OTEL_SDK_DISABLED", "true")
    assert configure_tracing(VERSION, set_global=False) is None


def test_protocol_picks_the_exporter(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    with exporter_from_env() as exporter:
        assert isinstance(exporter, HttpExporter)  # the default protocol is http/protobuf
    otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with exporter_from_env() as exporter:
        assert isinstance(exporter, GrpcExporter)
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")  # the traces variable wins
    with exporter_from_env() as exporter:
        assert isinstance(exporter, HttpExporter)
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="http/json"):
        otlp_exporter_from_env()

    # Only the traces endpoint, or only OTEL_TRACES_EXPORTER=otlp (default endpoint): export is on.
    otel_env.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    otel_env.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4317")
    with exporter_from_env() as exporter:
        assert isinstance(exporter, GrpcExporter)
    otel_env.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with exporter_from_env() as exporter:
        assert isinstance(exporter, GrpcExporter)


def test_service_name_default_and_override(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    names = []
    for service_name in (None, "agent-7-sidecar"):
        if service_name:
            otel_env.setenv("OTEL_SERVICE_NAME", service_name)
        provider = configure_tracing(VERSION, set_global=False)
        assert provider is not None
        names.append(
            (provider.resource.attributes["service.name"], provider.resource.attributes["service.version"])
        )
        assert shutdown_tracing(provider, 5.0)
    assert names == [("mcp-sidecar", VERSION), ("agent-7-sidecar", VERSION)]


# -- a dead collector never holds the exit ---------------------------------------------------------------

_EXITING = """
import time
from opentelemetry import trace
from sidecar.telemetry.tracing import _WATCHED, configure_tracing

provider = configure_tracing("0")  # the global provider; its bounded shutdown runs at exit
tracer = trace.get_tracer("exit-test")
for i in range(50):
    tracer.start_span(f"span {i}").end()
exporter, deadline = _WATCHED[provider], time.monotonic() + 5
while not (exporter.failing or exporter.stuck()) and time.monotonic() < deadline:
    time.sleep(0.01)  # until the batch processor is exporting (stuck) or has failed to
assert exporter.failing or exporter.stuck(), "no export was attempted within 5 s"
print(time.time(), flush=True)
"""


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("collector", ["black-hole", "closed-port"])
def test_exit_is_not_held_by_a_dead_collector(
    protocol: str, collector: str, otel_env: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    with black_hole() if collector == "black-hole" else contextlib.nullcontext(free_port()) as port:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", _EXITING], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = process.communicate(timeout=60)  # a safety net: the claim is timed below
            exited = time.time()
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, stderr
    took = exited - float(out)
    # A held exit waits out the exporter's 10 s budget; a busy machine's interpreter teardown
    # alone has taken over 2 s here, so the bound sits between the two.
    assert took < 6.0, f"exit took {took:.2f}s after the last span; stderr:\n{stderr[-2000:]}"
