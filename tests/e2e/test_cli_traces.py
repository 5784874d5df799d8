"""`mcp-sidecar run` with the standard OTEL_* variables: spans reach a collector, log lines name them."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from otlp import http_receiver

from .harness import Sidecars, free_port, health, stdio_server, wait_for, write_config

pytestmark = pytest.mark.anyio


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """`wait_for` in a worker thread: the collector in this event loop keeps receiving meanwhile."""
    await anyio.to_thread.run_sync(lambda: wait_for(predicate, timeout, what))


async def test_lifecycle_spans_are_exported_and_log_lines_carry_their_ids(
    tmp_path: Path, sidecars: Sidecars
) -> None:
    port = free_port()
    pid_file = tmp_path / "alpha.pid"
    config = write_config(tmp_path, port, stdio_server("alpha", pid_file, critical=True))
    async with http_receiver() as collector:
        env = os.environ | collector.env() | {"OTEL_SERVICE_NAME": "sidecar-under-test"}
        sidecar = sidecars(config, env=env)
        await until(lambda: (doc := health(port)) and doc["active_count"] == 1, 30, "alpha active")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        await until(
            lambda: (
                (doc := health(port)) and doc["servers"][0]["reconnect_attempts"] == 1 and doc["active_count"]
            ),
            30,
            "alpha reconnected",
        )
        reconnect = await collector.wait_for(lambda s: s.name == "reconnect alpha" and not s.error, 10)
        started = time.monotonic()
        stderr = await anyio.to_thread.run_sync(sidecar.stop)
        assert time.monotonic() - started < 3  # flushing spans does not hold the exit

    lines = [json.loads(line) for line in stderr.splitlines()]
    by_event = {line["event"]: line for line in lines}
    lost = collector.by_id(by_event["lost"]["span_id"])
    assert lost.name == "lost alpha" and lost.error and lost.attributes["error.type"] == "exited"
    assert by_event["lost"]["trace_id"] == lost.trace_id == reconnect.trace_id  # one outage, one trace
    assert reconnect.parent_span_id == lost.span_id
    first = next(line for line in lines if line["event"] == "connected" and line["attempt"] == 0)
    connect = collector.by_id(first["span_id"])
    children = {span.name for span in collector.spans if span.parent_span_id == connect.span_id}
    assert children == {"server/discover", "tools/list"}
    assert connect.resource["service.name"] == "sidecar-under-test"
    assert {span.attributes["mcp_sidecar.server"] for span in collector.spans} == {"alpha"}
