"""Canary secrets from env and headers appear in no output, whatever event carries them.

Four real servers, each holding a canary: one prints its env token to stderr and dies, one sits
behind a dead port with a bearer token, one is hit by a bug of ours (an exception that quotes the
secret), and one starts slower than its connect timeout. The canaries hold a quote and a
backslash, so that `repr` (KeyError's text, tracebacks) and JSON write them differently from the
value: every one of those spellings is searched for too. The outputs: every event's repr and
both log lines, statuses and errors, `/health/mcp`, the status page and table, both `/metrics`
expositions, and every span (names, attributes, events, status).

With the lifecycle work merged, the bug is an `internal_error` event with a traceback and the
slow start a `connect_overdue` one; the test then requires those kinds, and checks them the same way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import BEHAVING, free_port, spellings

from sidecar import MCPServerManager, events, parse_config
from sidecar.cli import status_table
from sidecar.connection import Connection
from sidecar.telemetry.logs import format_json, format_text
from sidecar.telemetry.metrics import SidecarMetrics
from sidecar.telemetry.tracing import LifecycleTracer
from sidecar.web.ops import health_document
from sidecar.web.status_page import render_status_page

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

SUFFIX = os.urandom(4).hex()
ENV_CANARY = f"env-can'ary\\\"{SUFFIX}"
HEADER_CANARY = f"hdr-can'ary\\\"{SUFFIX}"
BUG_CANARY = f"bug-can'ary\\\"{SUFFIX}"
SLOW_CANARY = f"slow-can'ary\\\"{SUFFIX}"
CANARIES = (ENV_CANARY, HEADER_CANARY, BUG_CANARY, SLOW_CANARY)
BUGGY_INFO = "buggy-server"  # serverInfo.name of the server our injected bug picks on


def span_texts(exporter: InMemorySpanExporter) -> list[str]:
    texts = []
    for span in exporter.get_finished_spans():
        texts += [span.name, str(span.status.description), *map(str, (span.attributes or {}).values())]
        for event in span.events:
            texts += [event.name, *map(str, (event.attributes or {}).values())]
    return texts


async def test_canaries_with_quotes_appear_in_no_output_of_any_event_kind(
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    real_refresh = Connection.refresh_tools
    bugs = 0

    async def buggy_once(self: Connection) -> Any:
        nonlocal bugs
        info = self.server_info
        if info is not None and info.name == BUGGY_INFO and bugs == 0:
            bugs += 1
            raise KeyError(BUG_CANARY) from ValueError(f"no route for token {BUG_CANARY}")
        return await real_refresh(self)

    monkeypatch.setattr(Connection, "refresh_tools", buggy_once)
    give_up = {"initial_backoff": "50ms", "max_backoff": "100ms", "max_attempts": 2, "on_give_up": "keep"}
    python = {"transport": "stdio", "command": sys.executable}
    document = {
        "defaults": {"connect_timeout": "10s", "health": {"interval": "200ms"}, "reconnect": give_up},
        "servers": [
            {
                "name": "env-leaker",
                "transport": "stdio",
                "command": "sh",
                "args": ["-c", 'echo "token is $API_TOKEN" >&2; exit 3'],
                "env": {"API_TOKEN": "${ENV_CANARY}"},
            },
            {
                "name": "header-holder",
                "transport": "streamable-http",
                "url": f"http://127.0.0.1:{free_port()}/mcp",
                "headers": {"Authorization": f"Bearer {HEADER_CANARY}"},
            },
            {
                **python,
                "name": "buggy",
                "args": [str(BEHAVING), "--name", BUGGY_INFO],
                "env": {"TOKEN": BUG_CANARY},
                "protocol": "legacy",  # serverInfo is known right after initialize
            },
            {
                **python,
                "name": "slow",
                "args": [str(BEHAVING), "--slow-start", "1.5"],
                "env": {"TOKEN": SLOW_CANARY},
                "connect_timeout": "500ms",
            },
        ],
    }
    config = parse_config(json.dumps(document), "canaries.json", {"ENV_CANARY": ENV_CANARY})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = LifecycleTracer(provider, config)
    manager = MCPServerManager(config)
    metrics = SidecarMetrics(manager.statuses)
    log = watch(manager)
    async with manager:
        for server in ("env-leaker", "header-holder"):
            await log.wait_for(is_event(server, "gave_up"), timeout=15)
        await log.wait_for(is_event("buggy", "connected"), timeout=20)  # the bug hit one attempt only
        await log.wait_for(lambda e: e.server == "slow" and e.kind in ("gave_up", "connected"), timeout=30)
        health = health_document(manager.statuses())
        outputs = [
            json.dumps(health),
            render_status_page(health),
            status_table(health),
            *(f"{error} {error!r}" for error in manager.errors.values()),
            *(repr(status) for status in manager.statuses()),
        ]
    everything = log.drain()
    for event in everything:
        metrics.observe(event)
        tracer.observe(event)
        outputs += [repr(event), format_json(event), format_text(event)]
    outputs += [metrics.render(False)[0].decode(), metrics.render(True)[0].decode(), *span_texts(exporter)]
    provider.shutdown()

    kinds = {event.kind for event in everything}
    expected = {"connecting", "connect_failed", "reconnect_attempt", "gave_up", "connected"}
    expected |= {"internal_error"} if hasattr(events, "InternalError") else set()
    expected |= {"connect_overdue"} if hasattr(events, "ConnectOverdue") else set()
    assert kinds >= expected, kinds
    assert bugs == 1 and len(exporter.get_finished_spans()) > 5
    for canary in CANARIES:
        for spelling in spellings(canary):
            leaked = [text[:300] for text in outputs if spelling in text]
            assert not leaked, f"{spelling!r} leaked into: {leaked}"
    # The secrets were there to leak, and were masked, not dropped with their message.
    assert "token is ***" in manager_errors(outputs, "env-leaker")
    assert "KeyError" in str(outputs) and "***" in str([e for e in everything if e.server == "buggy"])


def manager_errors(outputs: list[str], server: str) -> str:
    """The `/health/mcp` document's last_error of `server` (it is the first output)."""
    return next(s["last_error"] for s in json.loads(outputs[0])["servers"] if s["name"] == server)
