"""Spans as they may leave the process: the configured secrets masked in every text a span carries.

The sidecar builds its own spans from redacted text, but not every exported span is its own: the
mcp SDK names its SERVER span after the tool a client asked for (``tools/call <name>``), and puts a
peer's error message (which may quote a resource URI) in its status and exception events. A client
that pastes the gateway's token into a name would send it on to the collector. So every span
passes through a `SpanRedactor` on its way to the exporter (in the export thread, off the calls'
path): its name, attribute values, events, links, status description and trace state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from ..redact import make_redactor

__all__ = ["SpanRedactor", "redact_span"]

Hide = Callable[[str], str]


class SpanRedactor:
    """Masks secrets in spans. The set only grows: a reload adds the new config's secrets and
    keeps the old ones, which spans still queued for export may hold."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._hide = make_redactor(())
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too, from the next span on."""
        merged = self._secrets | {secret for secret in secrets if secret}
        if merged != self._secrets:
            # One assignment the export thread reads once per span: no lock needed.
            self._secrets, self._hide = merged, make_redactor(merged)

    def __call__(self, span: ReadableSpan) -> ReadableSpan:
        """`span` itself when none of its texts holds a secret (one scan of them all, the common
        case), else a redacted copy."""
        hide = self._hide
        texts = "\n".join(_texts(span))
        if hide(texts) == texts:
            return span
        return redact_span(span, hide)


def redact_span(span: ReadableSpan, hide: Hide) -> ReadableSpan:
    """A copy of `span` with `hide` applied to its name, attribute values, events (names and
    attributes: an exception's type, message and traceback), links' attributes, status
    description and trace state. Times, ids, kind, resource and scope are kept."""
    status = span.status
    if status.description:
        status = Status(status.status_code, hide(status.description))
    return _RedactedSpan(
        span,
        name=hide(span.name),
        context=_context(span.context, hide),
        parent=span.parent,
        resource=span.resource,
        attributes=_attributes(span.attributes, hide),
        events=[
            Event(hide(event.name), _attributes(event.attributes, hide), event.timestamp)
            for event in span.events
        ],
        links=[Link(_context(link.context, hide), _attributes(link.attributes, hide)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _RedactedSpan(ReadableSpan):
    """A redacted copy that still reports what the SDK dropped from the original (OTLP sends it)."""

    def __init__(self, original: ReadableSpan, **fields: Any) -> None:
        super().__init__(**fields)
        self._dropped = (original.dropped_attributes, original.dropped_events, original.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def _texts(span: ReadableSpan) -> Iterator[str]:
    """Every text of `span` that `redact_span` rewrites."""
    yield span.name
    if span.status.description:
        yield span.status.description
    yield from _attribute_texts(span.attributes)
    for event in span.events:
        yield event.name
        yield from _attribute_texts(event.attributes)
    for link in span.links:
        yield from _attribute_texts(link.attributes)
        if link.context.trace_state:
            yield link.context.trace_state.to_header()
    if span.context is not None and span.context.trace_state:
        yield span.context.trace_state.to_header()


def _attribute_texts(attributes: Attributes) -> Iterator[str]:
    for value in (attributes or {}).values():
        yield from _value_texts(value)


def _value_texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _value_texts(item)
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for item in value:
            yield from _value_texts(item)


def _value(value: Any, hide: Hide) -> Any:
    if isinstance(value, str):
        return hide(value)
    if isinstance(value, Mapping):
        return {key: _value(item, hide) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return tuple(_value(item, hide) for item in value)
    return value


def _attributes(attributes: Attributes, hide: Hide) -> Attributes:
    if not attributes:
        return attributes
    redacted = {key: _value(value, hide) for key, value in attributes.items()}
    if not isinstance(attributes, BoundedAttributes):
        return redacted
    bounded = BoundedAttributes(attributes.maxlen, redacted, immutable=True)
    bounded.dropped = attributes.dropped  # what the SDK's limits dropped, still reported
    return bounded


def _context(context: SpanContext | None, hide: Hide) -> SpanContext | None:
    """The context with its trace state's values masked (a caller's `tracestate` is kept on the
    spans that continue its trace); an entry whose key holds a secret is left out."""
    if context is None or not context.trace_state:
        return context
    entries = [(key, hide(value)) for key, value in context.trace_state.items() if hide(key) == key]
    return SpanContext(
        context.trace_id, context.span_id, context.is_remote, context.trace_flags, TraceState(entries)
    )
