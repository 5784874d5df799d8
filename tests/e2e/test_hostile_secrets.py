"""A canary secret appears in no output of a real `mcp-sidecar run`, the new event kinds included.

Like tests/e2e/test_ops.py's canary test, and besides: a bug of ours whose exception quotes the
secret (an `internal_error`, logged with its traceback), and a server slower than its connect
timeout (`connect_overdue`). The bug is planted in the sidecar process by a `sitecustomize` module
on its PYTHONPATH, which Python imports at start; the servers are real. The canary holds a quote
and a backslash, so `repr` and JSON write it differently: each spelling is searched for. Both log
formats are checked: one line per event, a traceback included.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import spellings

from .harness import Sidecars, free_port, health, stdio_server, wait_for, write_config

PLANTED_BUG = """\
import os

secret = os.environ.get("PLANTED_BUG_SECRET")
if secret:  # the first tools/list of server "buggy" raises an exception quoting the secret
    from sidecar.connection import Connection

    real = Connection.refresh_tools
    hit = []

    async def refresh_tools(self):
        if not hit and self.server_info is not None and self.server_info.name == "buggy-server":
            hit.append(1)
            raise KeyError(secret) from ValueError("no route for token " + secret)
        return await real(self)

    Connection.refresh_tools = refresh_tools
"""


def read(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:  # /readyz answers 503 while a critical server is down
        return error.read().decode()


def openmetrics(port: int) -> str:
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=accept)
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.read().decode()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_quoted_canary_appears_in_no_output_of_internal_errors_and_slow_starts(
    tmp_path: Path, sidecars: Sidecars, log_format: str
) -> None:
    canary = f"canary'{os.urandom(6).hex()}\\\"x"
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(PLANTED_BUG)
    port = free_port()
    servers = (
        stdio_server("buggy", tmp_path / "buggy.pid", "--name", "buggy-server", critical=True).replace(
            "criticality:", "protocol: legacy, env: {TOKEN: '${CANARY}'}, criticality:"
        )
        + stdio_server("slow", tmp_path / "slow.pid", "--slow-start", "1.5").replace(
            "criticality:", "connect_timeout: 300ms, env: {TOKEN: '${CANARY}'}, criticality:"
        )
        + "  - {name: env-holder, transport: stdio, command: sh, "
        """args: [-c, 'echo "bad key $API_KEY" >&2; exit 3'], env: {API_KEY: "${CANARY}"}}\n"""
        f"  - {{name: header-holder, transport: streamable-http, url: 'http://127.0.0.1:{free_port()}/mcp', "
        'headers: {Authorization: "Bearer ${CANARY}"}, connect_timeout: 1s}\n'
    )
    config = write_config(tmp_path, port, servers)
    env = os.environ | {"CANARY": canary, "PLANTED_BUG_SECRET": canary, "PYTHONPATH": str(inject)}
    sidecar = sidecars(config, env=env, log_format=log_format)

    def settled() -> dict | None:
        doc = health(port)
        states = {s["name"]: s for s in doc["servers"]} if doc else {}
        ready = (
            len(states) == 4
            and states["buggy"]["state"] == "active"
            and states["slow"]["state"] == "active"
            and states["env-holder"]["reconnect_attempts"] >= 1
            and states["header-holder"]["reconnect_attempts"] >= 1
        )
        return doc if ready else None

    document = wait_for(settled, 60, "buggy and slow active, the other two retrying")
    outputs = [read(port, path) for path in ("/metrics", "/health/mcp", "/", "/readyz")]
    outputs.append(openmetrics(port))
    logs = sidecar.stop()
    lines = logs.splitlines()

    for spelling in spellings(canary):
        for output in [*outputs, logs]:
            assert spelling not in output, (
                f"{spelling!r} leaked: ...{output[output.find(spelling) - 200 :][:400]}"
            )
    env_holder = next(s for s in document["servers"] if s["name"] == "env-holder")
    assert "bad key ***" in env_holder["last_error"]  # masked, not dropped
    assert "mcp_sidecar_internal_errors_total 1" in outputs[0]
    assert all(line.isprintable() for line in lines)  # one line per event, traceback included
    if log_format == "json":
        records = [json.loads(line) for line in lines]
        kinds = {record["event"] for record in records}
        assert {"internal_error", "connect_overdue", "connect_failed", "connected"} <= kinds, kinds
        (bug,) = [r for r in records if r["event"] == "internal_error"]
        assert bug["server"] == "buggy" and "KeyError" in bug["traceback"] and "***" in bug["traceback"]
        assert "no route for token ***" in bug["traceback"]  # the chained cause, masked too
    else:
        bug = next(line for line in lines if " buggy: internal_error " in line)
        assert "KeyError" in bug and "\\n" in bug and "***" in bug  # the traceback, escaped onto its line
        assert any(" slow: connect_overdue " in line for line in lines)
