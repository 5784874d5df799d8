"""OTLP receivers for tests, traces and metrics: http/protobuf (aiohttp) and gRPC (grpcio), on 127.0.0.1.

Both keep every request body exactly as it arrived (to search for leaked secrets) and
decode it with `opentelemetry-proto` into flat `ReceivedSpan`s and `ReceivedPoint`s for
assertions. They run
in the test's event loop, so the code under test must export from another thread (the
SDK's batch processor does) and the test must never block the loop while it waits.

    async with http_receiver() as receiver:   # or grpc_receiver()
        monkeypatch.setenv(...receiver.env())
        ...
        span = await receiver.wait_for(lambda s: s.name == "connect fs", timeout=5)
        point = await receiver.wait_for_point(lambda p: p.name == "mcp.client.operation.duration", 5)
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc
import grpc.aio
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from support import LOCALHOST

__all__ = [
    "KIND_CLIENT",
    "KIND_INTERNAL",
    "STATUS_ERROR",
    "STATUS_UNSET",
    "OTLPReceiver",
    "ReceivedPoint",
    "ReceivedSpan",
    "decode",
    "decode_metrics",
    "grpc_receiver",
    "http_receiver",
]

KIND_INTERNAL = Span.SpanKind.SPAN_KIND_INTERNAL
KIND_CLIENT = Span.SpanKind.SPAN_KIND_CLIENT
STATUS_ERROR = Status.StatusCode.STATUS_CODE_ERROR
STATUS_UNSET = Status.StatusCode.STATUS_CODE_UNSET
_GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_GRPC_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened: ids as lower-case hex, attributes as a plain dict."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int  # Span.SpanKind value
    start_ns: int
    end_ns: int
    status_code: int  # Status.StatusCode value
    status_message: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    resource: dict[str, Any]
    scope: str

    @property
    def error(self) -> bool:
        return self.status_code == STATUS_ERROR


def decode(body: bytes) -> list[ReceivedSpan]:
    """Every span of one `ExportTraceServiceRequest`."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        attributes=_attributes(span.attributes),
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


@dataclass(frozen=True)
class ReceivedPoint:
    """One exported data point of one metric, flattened; `value` for gauges and sums."""

    name: str
    unit: str
    kind: str  # "histogram" | "sum" | "gauge"
    attributes: dict[str, Any]
    time_ns: int
    resource: dict[str, Any]
    scope: str
    value: float = 0.0
    monotonic: bool = False  # sums: a counter
    count: int = 0  # histograms
    sum: float = 0.0
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()


def decode_metrics(body: bytes) -> list[ReceivedPoint]:
    """Every data point of one `ExportMetricsServiceRequest`."""
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points: list[ReceivedPoint] = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                common = {"name": metric.name, "unit": metric.unit, "kind": kind, "resource": resource,
                          "scope": scope_metrics.scope.name}  # fmt: skip
                if kind == "histogram":
                    points += [
                        ReceivedPoint(
                            **common,
                            attributes=_attributes(p.attributes),
                            time_ns=p.time_unix_nano,
                            count=p.count,
                            sum=p.sum,
                            bucket_counts=tuple(p.bucket_counts),
                            explicit_bounds=tuple(p.explicit_bounds),
                        )
                        for p in metric.histogram.data_points
                    ]
                elif kind in ("sum", "gauge"):
                    data = getattr(metric, kind)
                    monotonic = kind == "sum" and data.is_monotonic
                    points += [
                        ReceivedPoint(
                            **common,
                            attributes=_attributes(p.attributes),
                            time_ns=p.time_unix_nano,
                            value=getattr(p, p.WhichOneof("value")),
                            monotonic=monotonic,
                        )
                        for p in data.data_points
                    ]
    return points


@dataclass
class OTLPReceiver:
    """What one receiver got: the raw bodies and the decoded spans, in arrival order."""

    protocol: str  # "http/protobuf" | "grpc"
    port: int = 0
    bodies: list[bytes] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_bodies: list[bytes] = field(default_factory=list)
    points: list[ReceivedPoint] = field(default_factory=list)
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    @property
    def endpoint(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard variables that point an exporter here, flushing every 50 ms."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }

    def receive(self, body: bytes) -> None:
        self.bodies.append(body)
        self.spans.extend(decode(body))
        self._arrived.set()
        self._arrived = anyio.Event()

    def receive_metrics(self, body: bytes) -> None:
        self.metric_bodies.append(body)
        self.points.extend(decode_metrics(body))
        self._arrived.set()
        self._arrived = anyio.Event()

    def raw(self) -> bytes:
        return b"".join((*self.bodies, *self.metric_bodies))

    def latest(self, name: str) -> list[ReceivedPoint]:
        """The last point received of each series of metric `name` (cumulative: the current numbers)."""
        last: dict[tuple[tuple[str, Any], ...], ReceivedPoint] = {}
        for point in self.points:
            if point.name == name:
                last[tuple(sorted(point.attributes.items()))] = point
        return list(last.values())

    async def wait_for_point(
        self, predicate: Callable[[ReceivedPoint], bool], timeout: float, what: str = "data point"
    ) -> ReceivedPoint:
        """The first data point received (so far or within `timeout` s) that matches."""
        with anyio.move_on_after(timeout):
            while True:
                for point in self.points:
                    if predicate(point):
                        return point
                await self._arrived.wait()
        names = sorted({point.name for point in self.points})
        raise AssertionError(f"no {what} within {timeout:g}s; received metric names: {names}")

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]

    def by_id(self, span_id: str) -> ReceivedSpan:
        found = [span for span in self.spans if span.span_id == span_id]
        assert len(found) == 1, f"{len(found)} spans with id {span_id}"
        return found[0]

    async def wait_for(
        self, predicate: Callable[[ReceivedSpan], bool], timeout: float, what: str = "span"
    ) -> ReceivedSpan:
        """The first span received (so far or within `timeout` s) that matches."""
        with anyio.move_on_after(timeout):
            while True:
                for span in self.spans:
                    if predicate(span):
                        return span
                await self._arrived.wait()
        names = sorted({span.name for span in self.spans})
        raise AssertionError(f"no {what} within {timeout:g}s; received span names: {names}")


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


@asynccontextmanager
async def http_receiver() -> AsyncIterator[OTLPReceiver]:
    """OTLP/HTTP with protobuf bodies: `POST /v1/traces` and `/v1/metrics` on a free 127.0.0.1 port."""
    receiver = OTLPReceiver("http/protobuf")

    async def traces(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text="want application/x-protobuf")
        body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        receiver.receive(body)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def metrics(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text="want application/x-protobuf")
        receiver.receive_metrics(
            _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        )
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False)
    with anyio.fail_after(10):
        await runner.setup()
        site = web.TCPSite(runner, LOCALHOST, 0)
        await site.start()
    receiver.port = int(runner.addresses[0][1])
    try:
        yield receiver
    finally:
        with anyio.fail_after(5, shield=True):
            await runner.cleanup()


@asynccontextmanager
async def grpc_receiver() -> AsyncIterator[OTLPReceiver]:
    """OTLP/gRPC `TraceService/Export` and `MetricsService/Export` on a free 127.0.0.1 port, keeping
    the request bytes as sent."""
    receiver = OTLPReceiver("grpc")

    async def export(body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> ExportTraceServiceResponse:
        receiver.receive(body)
        return ExportTraceServiceResponse()

    # No request deserializer: the handler gets the wire bytes, and decodes them itself.
    handler = grpc.method_handlers_generic_handler(
        _GRPC_SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export, response_serializer=ExportTraceServiceResponse.SerializeToString
            )
        },
    )

    async def export_metrics(
        body: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ExportMetricsServiceResponse:
        receiver.receive_metrics(body)
        return ExportMetricsServiceResponse()

    metrics_handler = grpc.method_handlers_generic_handler(
        _GRPC_METRICS_SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export_metrics, response_serializer=ExportMetricsServiceResponse.SerializeToString
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler, metrics_handler))
    receiver.port = server.add_insecure_port(f"{LOCALHOST}:0")
    with anyio.fail_after(10):
        await server.start()
    try:
        yield receiver
    finally:
        with anyio.fail_after(5, shield=True):
            await server.stop(grace=None)
