"""A canary secret appears in no output of a real `mcp-sidecar run`: new event kinds, the gateway.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from otlp import KIND_CLIENT, http_receiver
from support import spellings

from .harness import Sidecars, free_port, health, stdio_server, wait_for, write_config

if TYPE_CHECKING:
    from conftest import Service

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


# -- through the gateway ------------------------------------------------------------------------------


@dataclass
class Traffic:
    """What a careless client got from the gateway, and what the upstreams received from it."""

    answers: list[str] = field(default_factory=list)  # to requests whose token was only a credential
    shown: list[str] = field(default_factory=list)  # meta tool results: an upstream's own credentials
    echoes: list[str] = field(default_factory=list)  # to requests that put the token in names, arguments
    received: dict[str, Any] = field(default_factory=dict)  # per era and server: the meta tool's view


async def _gateway_traffic(url: str, token: str, in_names: bool) -> Traffic:
    """Calls through the gateway as a careless client makes them: no token, wrong tokens (one
    starting with the right one), the token in an Origin, a `traceparent` and a `tracestate`
    header, in tool arguments (a failing call), in both eras; with `in_names`, also in a tool
    name and a resource URI that do not exist."""
    traffic = Traffic()
    good = {"Authorization": f"Bearer {token}"}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    async with httpx2.AsyncClient(timeout=10) as http:
        for headers in (
            {},
            {"Authorization": f"Bearer {token}x"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": token},
            {**good, "Origin": f"https://{token}.example.com"},
        ):
            refused = await http.post(url, headers={**accept, **headers}, content=ping)
            assert refused.status_code in (401, 403), refused.status_code
            traffic.answers += [refused.text, str(refused.headers)]
    sneaky = {**good, "traceparent": f"00-{token}-00f067aa0ba902b7-01", "tracestate": f"k={token}"}
    for mode in ("legacy", "2026-07-28"):
        transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=sneaky, timeout=10))
        async with Client(transport, mode=mode) as client:
            for server in ("local", "remote"):
                result = await client.call_tool(f"{server}__meta", {}, meta={"note": "kept"})
                traffic.received[f"{mode} {server}"] = result.structured_content
                traffic.shown.append(result.model_dump_json())
                failing = [client.call_tool(f"{server}__add", {"a": token, "b": 1})]  # rejected upstream
                if in_names:
                    failing += [
                        client.call_tool(f"{server}__{token}", {}),  # no such tool
                        client.read_resource(f"mcp-sidecar://{server}/{token}"),  # no such resource
                    ]
                for call in failing:
                    try:
                        traffic.echoes.append((await call).model_dump_json())
                    except MCPError as exc:
                        traffic.echoes.append(f"{exc} {exc.error.model_dump_json()}")
    return traffic


def _leaks(secret: str, texts: list[str], raw: bytes) -> list[str]:
    """Where any spelling of `secret` appears: an excerpt of each text, and the OTLP bodies."""
    found = []
    for spelling in spellings(secret):
        found += [text[max(0, text.find(spelling) - 200) :][:400] for text in texts if spelling in text]
        found += ["the OTLP export"] if spelling.encode() in raw else []
    return found


@pytest.mark.anyio
@pytest.mark.parametrize("in_names", [False, True])
async def test_a_gateway_token_and_upstream_secrets_appear_in_no_output(
    tmp_path: Path, sidecars: Sidecars, http_server: Callable[..., Awaitable[Service]], in_names: bool
) -> None:
    """The gateway's bearer token (`gateway.token_env`) and the secrets of the servers behind it
    (an HTTP server's header token, a stdio server's env) reach no log line, page, metric or
    span, however a client misuses the token; the token never reaches an upstream (it is the
    credential of one hop, not an identity to pass on), and no answer carries it back unless
    the client itself put it in a name or an argument."""
    suffix = os.urandom(4).hex()
    token, header, env_secret = (f"{kind}-can'ary\\\"{suffix}" for kind in ("gw", "hdr", "env"))
    remote = await http_server("streamable-http", "--meta-tool")
    ops, gateway = free_port(), free_port()
    servers = stdio_server("local", tmp_path / "local.pid", "--meta-tool").replace(
        "criticality:", "env: {TOKEN: '${ENV_SECRET}'}, criticality:"
    ) + (
        f"  - {{name: remote, transport: streamable-http, url: '{remote.url}', "
        "headers: {Authorization: 'Bearer ${HEADER_SECRET}', X-Api-Key: '${HEADER_SECRET}'}}\n"
    )
    gateway_config = f"  gateway: {{listen: '127.0.0.1:{gateway}', path: /mcp, token_env: GATEWAY_TOKEN}}\n"
    config = write_config(tmp_path, ops, servers, gateway_config)
    secrets = {"GATEWAY_TOKEN": token, "HEADER_SECRET": header, "ENV_SECRET": env_secret}
    async with http_receiver() as collector:
        sidecar = sidecars(config, env=os.environ | collector.env() | secrets)
        await anyio.to_thread.run_sync(
            lambda: wait_for(lambda: (h := health(ops)) and h["active_count"] == 2, 30, "both servers active")
        )
        traffic = await _gateway_traffic(f"http://127.0.0.1:{gateway}/mcp", token, in_names)
        await collector.wait_for(lambda s: s.name == "tools/call add", 10, "a failed gateway call's span")
        if in_names:  # masked, not dropped: the SDK's SERVER span for the unknown tool, and its
            # CLIENT span that quotes the upstream's error about the unknown URI
            await collector.wait_for(lambda s: s.name == "tools/call local__***", 10, "the masked name")
            await collector.wait_for(
                lambda s: s.kind == KIND_CLIENT and "Unknown resource: ***" in s.status_message,
                10,
                "the masked upstream error's span",
            )
        pages = [await anyio.to_thread.run_sync(read, ops, path) for path in ("/metrics", "/health/mcp", "/")]
        pages.append(await anyio.to_thread.run_sync(openmetrics, ops))
        logs = await anyio.to_thread.run_sync(sidecar.stop)
    raw = collector.raw()

    # It all happened: four calls received upstream, the gateway measured and traced.
    assert len(traffic.received) == 4, traffic.received
    for where, got in traffic.received.items():
        assert got["meta"].get("note") == "kept", where  # the caller's own _meta passed on
        assert got["authorization"] == (f"Bearer {header}" if "remote" in where else None), where
    assert 'mcp_gateway_sessions{era="legacy"}' in pages[0]
    assert "mcp_tool_calls_total" in pages[0] and "gateway" in pages[2]
    assert len(traffic.echoes) == (12 if in_names else 4)  # each failing call answered
    assert not in_names or any(token in echo for echo in traffic.echoes)  # the client's own name, back

    outputs = [*pages, logs, *traffic.answers]
    assert not _leaks(token, [*outputs, *traffic.shown, json.dumps(traffic.received)], raw)
    for secret in (header, env_secret):  # an upstream sees its own secret (and its tool shows it)
        assert not _leaks(secret, [*outputs, *traffic.echoes], raw)
