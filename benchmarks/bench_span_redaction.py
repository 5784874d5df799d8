"""Benchmark: the CPU that masking secrets costs each exported span, beside encoding it for OTLP.

    python benchmarks/bench_span_redaction.py

Spans as the gateway exports them (the mcp SDK's SERVER span of a `tools/call`, with its
attributes; a failing one with an exception event and a status) pass through `SpanRedactor`
as `_WatchedExporter` runs it, in the export thread: with no secret configured, with the 12
secrets of a config (gateway token, headers, env), and when the span holds one (then it is
copied). Each is set against encoding the same spans for OTLP/protobuf (`encode_spans`, which
every export does anyway). CPU time by `time.process_time`, median of 15 rounds of 2,000 spans,
both measured in alternation so that both see the same load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sidecar.telemetry.span_redaction import SpanRedactor

SPANS = 2000
ROUNDS = 15
SECRETS = [f"secret-value-{i:02d}-{'x' * (8 + i)}" for i in range(12)]


def _spans(tool: str, failing: bool) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-python-sdk")
    for i in range(SPANS):
        attributes = {
            "mcp.method.name": "tools/call",
            "jsonrpc.request.id": str(i),
            "mcp.session.id": "3f2a9c71d04b4e5a8e0f1c2b3a4d5e6f",
            "gen_ai.tool.name": tool,
            "gen_ai.operation.name": "execute_tool",
            "network.transport": "tcp",
            "mcp.protocol.version": "2025-11-25",
        }
        with tracer.start_as_current_span(
            f"tools/call {tool}", kind=SpanKind.SERVER, attributes=attributes
        ) as s:
            if failing:
                s.record_exception(ValueError(f"Unknown tool: {tool}"))
                s.set_status(StatusCode.ERROR, f"Unknown tool: {tool}")
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def _measure(spans: Sequence[ReadableSpan], redactor: SpanRedactor) -> tuple[float, float]:
    """Median CPU per span (s): redacting, encoding."""
    redact, encode = [], []
    for _ in range(ROUNDS):
        redact.append(_cpu(lambda: [redactor(span) for span in spans]))
        encode.append(_cpu(lambda: encode_spans(spans).SerializeToString()))
    return statistics.median(redact) / len(spans), statistics.median(encode) / len(spans)


def main() -> None:
    cases = [
        ("no secret configured, tool call", _spans("local__read_file", False), SpanRedactor()),
        ("12 secrets, tool call", _spans("local__read_file", False), SpanRedactor(SECRETS)),
        ("12 secrets, failing call (exception, status)", _spans("local__nope", True), SpanRedactor(SECRETS)),
        ("12 secrets, span holds one (copied)", _spans(f"local__{SECRETS[5]}", True), SpanRedactor(SECRETS)),
    ]
    print(f"{'case':48} {'redact/span':>12} {'encode/span':>12} {'ratio':>7}")
    for name, spans, redactor in cases:
        redact, encode = _measure(spans, redactor)
        print(f"{name:48} {redact * 1e6:10.1f}us {encode * 1e6:10.1f}us {redact / encode:6.2f}x")


if __name__ == "__main__":
    main()
