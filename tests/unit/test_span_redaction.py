"""Spans on their way to the exporter: every text they carry has the secrets masked, the rest is kept.

Spans are made by a real SDK tracer into an in-memory exporter (no I/O), as the mcp SDK makes
its own: a name, attributes, an exception event, a status, a caller's trace state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from sidecar.redact import make_redactor
from sidecar.telemetry.span_redaction import SpanRedactor, redact_span

SECRET = "gw-tok'en\\x9"  # a quote and a backslash: repr and JSON spell it differently
PLAIN = "gwtoken9x"  # a secret as a trace state value may hold it (no quote, no backslash)
CALLER = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "plain"), ("pasted", f"x{PLAIN}y")]),
)
MakeSpan = Callable[..., ReadableSpan]


@pytest.fixture
def server_span() -> Iterator[MakeSpan]:
    """Makes what the mcp SDK exports for a client that asked for tool `local__<name>`."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attributes=6))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mcp-python-sdk")

    def make(name: str, filler_attributes: int = 0) -> ReadableSpan:
        with tracer.start_as_current_span(
            f"tools/call local__{name}",
            context=set_span_in_context(NonRecordingSpan(CALLER)),
            kind=SpanKind.SERVER,
            attributes={"gen_ai.tool.name": f"local__{name}", "rpc.response.status_code": -32602},
            links=[Link(CALLER, {"note": f"from {name}"})],
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            span.set_attribute("mcp.uris", [f"mcp-sidecar://local/{name}", "mcp-sidecar://local/plain"])
            for i in range(filler_attributes):
                span.set_attribute(f"filler.{i}", i)
            span.record_exception(KeyError(name))
            span.set_status(StatusCode.ERROR, f"Unknown tool: local__{name}")
        (exported,) = exporter.get_finished_spans()
        exporter.clear()
        return exported

    yield make
    provider.shutdown()


def _all_text(span: ReadableSpan) -> str:
    parts = [span.name, repr(span.attributes), str(span.status.description), repr(span.context.trace_state)]
    for event in span.events:
        parts += [event.name, repr(event.attributes)]
    for link in span.links:
        parts += [repr(link.attributes), repr(link.context.trace_state)]
    return "\n".join(parts)


def test_every_text_of_a_span_is_masked(server_span: MakeSpan) -> None:
    original = server_span(SECRET)
    redacted = redact_span(original, make_redactor({SECRET, PLAIN}))

    text = _all_text(redacted)
    for spelling in (SECRET, repr(SECRET)[1:-1], PLAIN):
        assert spelling in _all_text(original)  # it was there to mask
        assert spelling not in text, text
    assert redacted.name == "tools/call local__***"
    assert redacted.attributes["gen_ai.tool.name"] == "local__***"
    assert redacted.attributes["mcp.uris"] == ("mcp-sidecar://local/***", "mcp-sidecar://local/plain")
    assert redacted.attributes["rpc.response.status_code"] == -32602  # not text: as it was
    assert redacted.status.status_code is StatusCode.ERROR
    assert redacted.status.description == "Unknown tool: local__***"
    (event,) = redacted.events
    assert event.name == "exception" and event.timestamp == original.events[0].timestamp
    assert event.attributes["exception.type"] == "KeyError"
    assert event.attributes["exception.message"] == '"***"'  # KeyError's repr of its key: masked too
    (link,) = redacted.links
    assert link.attributes == {"note": "from ***"}
    assert dict(redacted.context.trace_state) == {"vendor": "plain", "pasted": "x***y"}
    assert dict(link.context.trace_state) == {"vendor": "plain", "pasted": "x***y"}
    # What is not text is the span's own: ids, times, kind, parent, resource, scope.
    assert redacted.context.trace_id == original.context.trace_id
    assert redacted.context.span_id == original.context.span_id
    assert redacted.context.trace_flags == original.context.trace_flags
    assert redacted.parent == original.parent and redacted.parent.span_id == CALLER.span_id
    assert (redacted.start_time, redacted.end_time) == (original.start_time, original.end_time)
    assert redacted.kind is SpanKind.SERVER
    assert redacted.resource is original.resource
    assert redacted.instrumentation_scope == original.instrumentation_scope


def test_what_the_sdk_dropped_is_still_counted(server_span: MakeSpan) -> None:
    original = server_span(SECRET, filler_attributes=5)
    assert original.dropped_attributes == 2  # 8 set, 6 kept
    redacted = redact_span(original, make_redactor({SECRET}))
    assert redacted.dropped_attributes == 2
    assert (redacted.dropped_events, redacted.dropped_links) == (0, 0)
    assert len(redacted.attributes) == len(original.attributes) == 6


def test_a_trace_state_entry_whose_key_holds_the_secret_is_left_out(server_span: MakeSpan) -> None:
    redacted = redact_span(server_span("plain"), make_redactor({"pasted"}))
    assert dict(redacted.context.trace_state) == {"vendor": "plain"}


def test_a_span_without_secrets_is_passed_on_as_it_is(server_span: MakeSpan) -> None:
    span = server_span("nothing-secret")
    assert SpanRedactor({SECRET})(span) is span  # no copy: the common case costs one scan
    assert SpanRedactor()(span) is span


def test_the_redactor_masks_url_passwords_with_no_secret_configured(server_span: MakeSpan) -> None:
    redacted = SpanRedactor()(server_span("x http://me:hunter22@host/mcp"))
    assert redacted.name == "tools/call local__x http://me:***@host/mcp"
    assert "hunter22" not in _all_text(redacted)


def test_secrets_added_later_are_masked_and_earlier_ones_still_are(server_span: MakeSpan) -> None:
    redactor = SpanRedactor({"first-secret"})
    assert redactor(server_span("second-secret")).name == "tools/call local__second-secret"
    redactor.add({"second-secret", ""})  # a reload's new config; empty values are ignored
    assert redactor(server_span("second-secret")).name == "tools/call local__***"
    assert redactor(server_span("first-secret")).name == "tools/call local__***"
