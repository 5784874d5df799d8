"""`mcp-sidecar run` with the standard OTEL_* variables: spans reach a collector, log lines name them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from otlp import http_receiver

from .harness import free_port, health, stdio_server, write_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await anyio.to_thread.run_sync(predicate)
        if value:
            return value
        await anyio.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


async def test_lifecycle_spans_are_exported_and_log_lines_carry_their_ids(
    tmp_path: Path, sidecar_process: list
) -> None:
    port = free_port()
    pid_file = tmp_path / "alpha.pid"
    config = write_config(tmp_path, port, stdio_server("alpha", pid_file, critical=True))
    async with http_receiver() as collector:
        process = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block; waits are threaded)
            [sys.executable, "-m", "sidecar", "run", "-c", str(config)],
            env=os.environ | collector.env() | {"OTEL_SERVICE_NAME": "sidecar-under-test"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sidecar_process.append(process)
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
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=10))
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
