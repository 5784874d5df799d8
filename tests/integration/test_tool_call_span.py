"""One CLIENT span per tool call (`tools/call <tool>`), carrying the call's JSON-RPC id, whose
context is what the server receives in `params._meta`.

The fold of the mcp SDK's own send span into ours works through the global TracerProvider
(the SDK takes its tracer from there), which a process can set once: so the sidecar side runs
in a child process, exporting to the receiver in this test; the server reports the
`traceparent` it received (tests/servers/meta_server.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from otlp import KIND_CLIENT, STATUS_ERROR, STATUS_UNSET, http_receiver

if TYPE_CHECKING:
    from conftest import LeakGuard

pytestmark = pytest.mark.anyio

META_SERVER = Path(__file__).resolve().parents[1] / "servers" / "meta_server.py"
CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

_SIDECAR_SIDE = """
import json, sys
import anyio
from sidecar import MCPServerManager
from sidecar.config import ServerConfig
from sidecar.telemetry.tracing import configure_tracing, shutdown_tracing

provider = configure_tracing("9.9.9-test")  # global, as `mcp-sidecar run` makes it
config = ServerConfig.model_validate(
    {"name": "meta", "transport": "stdio", "command": sys.executable, "args": [sys.argv[1]]}
)


async def main() -> dict:
    async with MCPServerManager([config], shutdown_timeout=0.5) as manager:
        seen = await manager.call_tool("meta", "traceparent", {}, meta={"traceparent": sys.argv[2]})
        missing = await manager.call_tool("meta", "no_such_tool", {})
        return {"seen": seen.content[0].text, "missing_is_error": missing.is_error}


result = anyio.run(main)
assert shutdown_tracing(provider, 10.0)
print(json.dumps(result))
"""


async def test_one_span_per_call_whose_context_reaches_the_server(leak_guard: LeakGuard) -> None:
    async with http_receiver() as receiver:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [
                    sys.executable,
                    "-c",
                    _SIDECAR_SIDE,
                    str(META_SERVER),
                    f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                ],
                env={**clean, **receiver.env()},
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = json.loads(done.stdout)
    leak_guard.assert_clean()

    calls = [s for s in receiver.spans if "tools/call" in s.name]
    assert sorted(s.name for s in calls) == ["tools/call no_such_tool", "tools/call traceparent"], [
        s.name for s in receiver.spans
    ]  # no `MCP send tools/call ...` beside ours
    (call,) = [s for s in calls if s.name == "tools/call traceparent"]
    assert call.kind == KIND_CLIENT and call.status_code == STATUS_UNSET
    assert (call.trace_id, call.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert result["seen"] == f"00-{CALLER_TRACE}-{call.span_id}-01"  # the server's parent is our span
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["gen_ai.tool.name"] == "traceparent"
    assert call.attributes["jsonrpc.request.id"].isdigit()
    (missing,) = [s for s in calls if s.name == "tools/call no_such_tool"]
    assert result["missing_is_error"] and missing.status_code == STATUS_ERROR
    assert missing.attributes["error.type"] == "tool_error"
    assert missing.attributes["jsonrpc.request.id"] != call.attributes["jsonrpc.request.id"]
