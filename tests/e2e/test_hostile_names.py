"""Hostile names: what a server calls its tools and itself reaches every output escaped and harmless.

A real `mcp-sidecar run` supervises tests/servers/behaving.py `--hostile-names`: tools and prompts
named with quotes, newlines, control characters, bidi overrides, markup, exposition and log-line
forgeries and 10 KB, and a serverInfo of the same kind. Every tool is called once through the admin
endpoint, so that each name becomes a label. Then: `/metrics` parses, as text and as OpenMetrics,
with prometheus-client's own parsers and gives each name back exactly; `/health/mcp` is JSON that
gives them back exactly; every JSON log line is one line of valid JSON; and the status page, in a
real headless Chromium, shows them as text and runs nothing.

Server names come from the config, whose name pattern refuses every hostile one (last test).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browser import chromium
from servers.behaving import HOSTILE_NAMES, HOSTILE_SERVER_INFO

from sidecar.config import ConfigError, parse_config

from .harness import Sidecars, free_port, health, stdio_server, wait_for, write_config
from .test_ops import post, scrape
from .test_status_page import chromium_binary

__all__ = ["chromium_binary"]  # a fixture, imported to be used here

TOKEN_ENV = "HOSTILE_TEST_TOKEN"
TOOLS = ("echo", "add", "sleep", "pid", *HOSTILE_NAMES)  # behaving.py's own tools, then the hostile ones
NAME, VERSION = HOSTILE_SERVER_INFO


def start(tmp_path: Path, sidecars: Sidecars) -> tuple[int, str, object]:
    """A sidecar with one hostile server, active; its port, admin token and process."""
    port, token = free_port(), "admin-" + os.urandom(8).hex()
    config = write_config(
        tmp_path,
        port,
        stdio_server("hostile", tmp_path / "hostile.pid", "--hostile-names"),
        f"  admin_token_env: {TOKEN_ENV}\n",
    )
    sidecar = sidecars(config, env=os.environ | {TOKEN_ENV: token}, log_format="json")
    wait_for(lambda: (doc := health(port)) and doc["active_count"] == 1, 30, "the hostile server active")
    return port, token, sidecar


def call(port: int, token: str, tool: str) -> tuple[int, str]:
    return post(port, f"/servers/hostile/tools/{urllib.parse.quote(tool, safe='')}", token)


def test_hostile_names_reach_health_metrics_and_logs_exactly_and_harmlessly(
    tmp_path: Path, sidecars: Sidecars
) -> None:
    port, token, sidecar = start(tmp_path, sidecars)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/mcp", timeout=5) as response:
        document = json.loads(response.read().decode())
    (server,) = document["servers"]
    assert server["tools"] == list(TOOLS)  # every name back exactly, in the server's order
    assert server["server_info"] == {"name": NAME, "version": VERSION}

    # The tool name is part of the URL: 10 KB is past aiohttp's 8 KB request line. A clear 400; the
    # manager calls it fine (tests/integration/test_hostile_outputs.py).
    callable_names = [tool for tool in HOSTILE_NAMES if len(tool) < 8000]
    assert len(callable_names) == len(HOSTILE_NAMES) - 1
    status, body = call(port, token, HOSTILE_NAMES[-1])
    assert status == 400 and "Got more than 8190 bytes" in body, (status, body[:200])
    answers = {tool: call(port, token, tool) for tool in callable_names}
    for tool, (status, body) in answers.items():
        assert status == 200, (tool[:40], status, body[:200])
        assert json.loads(body)["content"][0]["text"] == tool  # routed to exactly that tool

    for openmetrics in (False, True):  # each parsed by prometheus-client's own parser
        metrics = scrape(port, openmetrics=openmetrics)
        assert metrics is not None, f"/metrics does not parse (openmetrics={openmetrics})"
        for tool in callable_names:
            assert metrics.value("mcp_tool_calls_total", server="hostile", tool=tool) == 1, tool[:40]
            assert metrics.value("mcp_tool_call_duration_seconds_count", server="hostile", tool=tool) == 1
        assert metrics.value("mcp_server_tools", server="hostile") == len(TOOLS)
        info = {"server": "hostile", "implementation": NAME, "implementation_version": VERSION}
        assert [labels for (name, labels), _ in metrics.samples.items() if name == "mcp_server_info"] == [
            tuple(sorted({**info, "protocol_version": server["protocol_version"]}.items()))
        ]
        assert not {"evil", "evil_total"} & metrics.families  # no family forged by a name

    logs = sidecar.stop()
    lines = logs.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one whole JSON document
    assert all(isinstance(record, dict) and "event" in record for record in records), lines
    connected = [r for r in records if r["event"] == "connected"]
    assert len(connected) == 1 and connected[0]["tools"] == list(TOOLS)
    assert connected[0]["server_name"] == NAME and connected[0]["server_version"] == VERSION
    assert not [r for r in records if r["event"] == "forged"]
    assert all(line.isascii() and line.isprintable() for line in lines)  # no raw control or bidi char


@pytest.mark.anyio
async def test_status_page_shows_hostile_names_as_text_and_runs_nothing(
    tmp_path: Path, sidecars: Sidecars, chromium_binary: str
) -> None:
    port, _, _ = start(tmp_path, sidecars)
    url = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{url}/", timeout=5) as response:  # noqa: ASYNC210 - nothing else runs
        raw = response.read().decode()
    assert raw.count("<script") == 1 and "<img" not in raw  # ours only, before any browser runs it

    async with chromium(chromium_binary, tmp_path / "chromium") as browser:
        for javascript in (False, True):
            page = await browser.new_page(javascript=javascript)
            await page.goto(f"{url}/")
            if javascript:  # the rows as the script re-renders them from health/mcp
                await page.evaluate("document.getElementById('updated').textContent = ''")
                await page.wait_for(
                    "document.getElementById('updated').textContent", timeout=10, what="a live refresh"
                )
            cells = await page.evaluate(
                """(() => {
                  const row = document.querySelector('#rows tr[data-server]');
                  const field = (f) => row.querySelector(`[data-field="${f}"]`);
                  return {server: row.dataset.server, tools: field('tools').textContent,
                          tool_names: field('tools').title, info: field('protocol_version').title,
                          scripts: document.scripts.length, imgs: document.images.length,
                          pwned: window.pwned === undefined ? null : window.pwned};
                })()"""
            )
            assert cells["server"] == "hostile" and cells["tools"] == str(len(TOOLS))
            assert (cells["scripts"], cells["imgs"], cells["pwned"]) == (1, 0, None)
            shown, info = ", ".join(TOOLS), f"{NAME} {VERSION}"
            if not javascript:
                # Parsed from HTML, an attribute's CR becomes LF and NUL becomes U+FFFD (HTML's
                # input rules): the same text, as the browser keeps it.
                shown = shown.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
            assert cells["tool_names"] == shown
            assert cells["info"] == info
            assert page.problems() == []  # no exception, no CSP violation


# A name is what a user wrote; the config refuses every hostile one, saying what is allowed.
NAME_RULE = "must start with a letter or digit and use only letters, digits, _ . -"


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_config_refuses_hostile_server_names_in_one_clear_line(name: str) -> None:
    document = {"servers": [{"name": name, "transport": "stdio", "command": sys.executable}]}
    with pytest.raises(ConfigError) as refused:
        parse_config(json.dumps(document), "hostile.json", {"HOME": "/home/user"})
    (problem,) = refused.value.problems
    assert problem.startswith("hostile.json: servers[0] (") and problem.isprintable(), problem
    expected = "must be at most 64 characters" if len(name) > 64 and name.isalnum() else NAME_RULE
    assert problem.endswith(f").name: {expected}"), problem
