"""Lifecycle events as log lines on stderr: JSON for machines (the default), text for people.

One line per lifecycle event, with the trace and span ids of the span that records it
when tracing is on. Passing health probes and successful tool calls are not logged: a
line per second per server is noise, and the metrics carry them. Errors in events are
already redacted by the supervisor.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol, TextIO

from ..events import HealthCheckPassed, LifecycleEvent, ToolCalled

__all__ = ["LogWriter", "SpanIds", "event_record", "format_json", "format_text", "route_library_logs"]


class SpanIds(Protocol):
    """What a log line needs of a span: its ids, as lower-case hex."""

    trace_id: str
    span_id: str


_WARNINGS = {
    "connect_failed",
    "connect_overdue",
    "health_check_failed",
    "lost",
    "reconnect_scheduled",
    "tool_called",
}
_ERRORS = {"gave_up", "dropped", "internal_error"}
_COMMON = {"server", "transport", "criticality", "state", "previous", "ts"}


def _level(event: LifecycleEvent) -> str:
    if event.kind in _ERRORS:
        return "error"
    if event.kind in _WARNINGS:
        return "warning"
    return "info"


def event_record(event: LifecycleEvent, span: SpanIds | None = None) -> dict[str, Any]:
    """The event as a flat JSON-ready mapping: `ts`, `level`, `event`, `server`, then its details."""
    record: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.ts)) + f".{int(event.ts % 1 * 1000):03d}Z",
        "level": _level(event),
        "event": event.kind,
        "server": event.server,
        "transport": event.transport,
        "criticality": event.criticality,
        "state": event.state.value,
    }
    if event.transition:
        record["previous"] = event.previous.value
    for field in fields(event):
        if field.name in _COMMON:
            continue
        value = getattr(event, field.name)
        if field.name in ("duration", "delay", "connected_for"):
            record[f"{field.name}_ms"] = round(value * 1000, 1)
        elif field.name == "phases":  # per-call timings: the span has them in full
            record["phases_ms"] = {p.name: round((p.ended - p.started) * 1000, 1) for p in value}
        elif isinstance(value, tuple):
            record[field.name] = list(value)
        elif value is not None:
            record[field.name] = value
    if span is not None:
        record["trace_id"] = span.trace_id
        record["span_id"] = span.span_id
    return record


def format_json(event: LifecycleEvent, span: SpanIds | None = None) -> str:
    return json.dumps(event_record(event, span), separators=(",", ":"))


def format_text(event: LifecycleEvent, span: SpanIds | None = None) -> str:
    record = event_record(event, span)
    record.pop("span_id", None)
    head = f"{record.pop('ts')} {record.pop('level').upper():7} {record.pop('server')}: {record.pop('event')}"
    for key in ("transport", "criticality", "tools"):
        record.pop(key, None)
    detail = " ".join(f"{key}={value}" for key, value in record.items())
    return f"{head} {detail}"


class LogWriter:
    """Writes one line per event worth a line, in the chosen format, to a stream (stderr)."""

    def __init__(
        self,
        formatter: Callable[[LifecycleEvent, SpanIds | None], str] = format_json,
        stream: TextIO | None = None,
    ) -> None:
        self._formatter = formatter
        self._stream = stream

    def write(self, event: LifecycleEvent, span: SpanIds | None = None) -> None:
        if isinstance(event, HealthCheckPassed):
            return
        if isinstance(event, ToolCalled) and event.error_type is None:
            return
        out = self._stream or sys.stderr
        out.write(self._formatter(event, span) + "\n")
        out.flush()


class _LineHandler(logging.Handler):
    """Warnings of the libraries (an OTLP export that failed, say) as lines of our own format."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__(logging.WARNING)
        self._json = json_lines

    def emit(self, record: logging.LogRecord) -> None:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        level, message = record.levelname.lower(), record.getMessage()
        if self._json:
            line = json.dumps(
                {"ts": ts, "level": level, "event": "library_log", "logger": record.name, "message": message},
                separators=(",", ":"),
            )
        else:
            line = f"{ts} {level.upper():7} {record.name}: {message}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def route_library_logs(log_format: str) -> None:
    """Send the libraries' warnings to stderr in the sidecar's log format, not Python's default."""
    logging.basicConfig(level=logging.WARNING, handlers=[_LineHandler(log_format == "json")], force=True)
